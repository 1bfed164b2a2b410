// Package checks holds the agent's health checks, the ones the Forlock
// operations guide's health-check script performs, and runs them as the
// health_check task.
//
// A Check reads one thing and judges it against the guide's thresholds;
// the judging is a pure function of what was read (EvaluateDisk,
// EvaluateMemory, EvaluateCPU, EvaluateContainer, EvaluateAPI,
// EvaluateDBConnections), so it is tested without a host. The checks are,
// in report order: the host's (free space of the state directory, memory,
// CPU use since the last run, free space of Docker's data root, of the
// backup directories and of the WAL archive directory, each file system
// judged once), the state of each expected container (Docker Engine), the
// API health endpoints with their p95 latency, PostgreSQL (pgx: SELECT 1
// and the connections in use against the pool), Redis (go-redis: PING)
// and the certificate nginx serves.
//
// Each Result carries, besides its verdict and a line for people, the
// numbers behind it as Measurements named with their unit (free_ratio,
// used_ratio, p95_seconds, connections, max_connections), which the
// control plane exports as metrics and alerts on with per-fleet
// thresholds; the agent's own verdict keeps the guide's constants below.
//
// A Suite runs the checks concurrently, each under its own timeout, into
// one Report: the health_check task (Handler) and the heartbeats (Monitor)
// both use it. A check whose target is not configured reports UNKNOWN and
// says what to configure; only CRITICAL fails a task.
package checks

import (
	"context"
	"fmt"
	"math"
	"time"
)

// Status is a check's verdict.
type Status int

// Verdicts, from best to worst. Unknown (the value could not be read)
// ranks between WARN and CRITICAL: it is reported but fails nothing.
const (
	OK Status = iota
	Warn
	Unknown
	Critical
)

func (s Status) String() string {
	switch s {
	case OK:
		return "OK"
	case Warn:
		return "WARN"
	case Unknown:
		return "UNKNOWN"
	case Critical:
		return "CRITICAL"
	}
	return fmt.Sprintf("Status(%d)", int(s))
}

// Result is one check's outcome.
type Result struct {
	// Name names the check, e.g. "disk".
	Name string
	// Status is the verdict.
	Status Status
	// Summary says what was seen, e.g. "63% free (81.8 GiB of 252 GiB)".
	Summary string
	// Measurements are the numbers behind the verdict, for the control
	// plane's metrics and alerts.
	Measurements []Measurement
}

// Measurement is one number a check read, in base units (ratios 0 to 1,
// seconds, counts); its name ends in the unit, e.g. "free_ratio".
type Measurement struct {
	Name  string
	Value float64
	// Subject says what the figure is about when a check measures several
	// things, e.g. a directory or a client address.
	Subject string
}

// String is the result's line for people: "disk OK 63% free (81.8 GiB of
// 252 GiB)".
func (r Result) String() string { return r.Name + " " + r.Status.String() + " " + r.Summary }

// Check is one health check.
type Check interface {
	// Name names the check, e.g. "disk".
	Name() string
	// Run reads what the check watches and judges it.
	Run(ctx context.Context) Result
}

// Thresholds of the operations guide ("Critical Metrics: Infrastructure").
const (
	DiskWarnFreePercent     = 20 // target: more than 20 % free
	DiskCriticalFreePercent = 10 // alert: less than 10 % free
	MemoryWarnUsedPercent   = 80 // target: less than 80 % used
	MemoryCriticalUsedPct   = 90 // alert: more than 90 % used
	CPUWarnUsedPercent      = 70 // normal: less than 70 % used
	CPUAlertUsedPercent     = 85 // alert: more than 85 % used
	DBConnWarnPercent       = 80 // of the connection pool in use
	DBConnCriticalPercent   = 90
)

// Thresholds of the operations guide ("Critical Metrics: Application"):
// API response time, p95.
const (
	APILatencyWarn     = 200 * time.Millisecond // target: below 200 ms
	APILatencyCritical = 500 * time.Millisecond // alert: above 500 ms
)

// EvaluateDisk judges a file system with total bytes of which free are
// free: CRITICAL below 10 % free, WARN below 20 %, else OK.
func EvaluateDisk(total, free uint64) Result {
	r := Result{Name: "disk"}
	if total == 0 || free > total {
		r.Status, r.Summary = Unknown, fmt.Sprintf("the file system reports %d bytes free of %d", free, total)
		return r
	}
	pct := 100 * float64(free) / float64(total)
	switch {
	case pct < DiskCriticalFreePercent:
		r.Status = Critical
	case pct < DiskWarnFreePercent:
		r.Status = Warn
	}
	// Rounded down, so the figure never looks better than the verdict.
	r.Summary = fmt.Sprintf("%d%% free (%s of %s)", int(math.Floor(pct)), Bytes(free), Bytes(total))
	r.Measurements = []Measurement{{Name: "free_ratio", Value: float64(free) / float64(total)}}
	return r
}

// EvaluateMemory judges memory of total bytes of which available are
// available for new work: CRITICAL above 90 % used, WARN above 80 %, else
// OK.
func EvaluateMemory(total, available uint64) Result {
	r := Result{Name: "memory"}
	if total == 0 || available > total {
		r.Status, r.Summary = Unknown, fmt.Sprintf("the kernel reports %d bytes available of %d", available, total)
		return r
	}
	used := total - available
	var pct int
	r.Status, pct = judgeUse(float64(used), float64(total), MemoryWarnUsedPercent, MemoryCriticalUsedPct)
	r.Summary = fmt.Sprintf("%d%% used (%s of %s)", pct, Bytes(used), Bytes(total))
	r.Measurements = []Measurement{{Name: "used_ratio", Value: float64(used) / float64(total)}}
	return r
}

// EvaluateCPU judges the host's CPU use over an interval in which busy of
// total clock ticks were not idle: WARN above 70 % used, else OK. Above
// the guide's alert threshold (85 %) it stays WARN and says so: one busy
// interval is not a failed node, and only CRITICAL fails a health_check
// task. The alert is the control plane's (ForlockCPUHigh), on the
// measurement held above the threshold for minutes.
func EvaluateCPU(busy, total uint64, over time.Duration) Result {
	r := Result{Name: "cpu"}
	if total == 0 || busy > total {
		r.Status, r.Summary = Unknown, fmt.Sprintf("the kernel reports %d busy clock ticks of %d", busy, total)
		return r
	}
	var pct int
	r.Status, pct = judgeUse(float64(busy), float64(total), CPUWarnUsedPercent, CPUAlertUsedPercent)
	r.Summary = fmt.Sprintf("%d%% used over the last %s", pct, over.Round(100*time.Millisecond))
	if r.Status == Critical {
		r.Status = Warn
		r.Summary += fmt.Sprintf(" (above the %d%% alert threshold)", CPUAlertUsedPercent)
	}
	r.Measurements = []Measurement{{Name: "used_ratio", Value: float64(busy) / float64(total)}}
	return r
}

// EvaluateDBConnections judges inUse connections against the pool that
// max_connections leaves to ordinary roles, reserved slots being kept for
// superusers: CRITICAL above 90 % of the pool, WARN above 80 %, else OK.
func EvaluateDBConnections(inUse, maxConns, reserved int) Result {
	r := Result{Name: "postgres"}
	pool := maxConns - reserved
	if pool <= 0 || inUse < 0 || reserved < 0 {
		r.Status, r.Summary = Unknown, fmt.Sprintf("the server reports %d connections in use, max_connections %d, %d reserved", inUse, maxConns, reserved)
		return r
	}
	var pct int
	r.Status, pct = judgeUse(float64(inUse), float64(pool), DBConnWarnPercent, DBConnCriticalPercent)
	r.Summary = fmt.Sprintf("%d of %d connections in use (%d%%; max_connections %d less %d reserved)",
		inUse, pool, pct, maxConns, reserved)
	r.Measurements = []Measurement{{Name: "connections", Value: float64(inUse)}, {Name: "max_connections", Value: float64(pool)}}
	return r
}

// judgeUse judges used of total against thresholds in percent: CRITICAL
// above crit, WARN above warn, else OK. It returns the percentage rounded
// up, so the figure shown never looks better than the verdict.
func judgeUse(used, total, warn, crit float64) (Status, int) {
	pct := 100 * used / total
	st := OK
	switch {
	case pct > crit:
		st = Critical
	case pct > warn:
		st = Warn
	}
	return st, int(math.Ceil(pct))
}

// Bytes formats n in binary units with three significant digits or so:
// "512 B", "81.8 GiB", "252 GiB".
func Bytes(n uint64) string {
	const units = "KMGTPE"
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	v, i := float64(n)/1024, 0
	for v >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	if v >= 99.95 {
		return fmt.Sprintf("%.0f %ciB", v, units[i])
	}
	return fmt.Sprintf("%.1f %ciB", v, units[i])
}
