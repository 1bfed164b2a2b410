package metrics

import (
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/forlock/fleet/controlplane/internal/newest"
	"github.com/forlock/fleet/controlplane/internal/registry"
	"github.com/forlock/fleet/controlplane/internal/store"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// MaxChecksPerNode caps the check series of one node: check names come
// from the agent's configuration, and the series budget (docs/operations.md)
// must hold even for an agent that reports many.
const MaxChecksPerNode = 24

// Fleet is what the collector reads: the registry's live view and the store.
type Fleet interface {
	Samples() []registry.Sample
}

// Catalog is the part of the store the collector reads.
type Catalog interface {
	ScanRestorePoints(before string, fn func(*forlockv1.RestorePoint) bool) error
	WalNewestEnds() (map[string]time.Time, error)
	Path() string
	Disk() store.DiskStatus
}

var (
	descNodes     = prometheus.NewDesc("forlock_nodes", "Registered nodes by state (enrolled, online, unreachable, offline).", []string{"state"}, nil)
	descNodeState = prometheus.NewDesc("forlock_node_state", "1 for each node, labelled with its state (enrolled, online, unreachable, offline).",
		[]string{"node", "state"}, nil)
	descHeartbeatAge = prometheus.NewDesc("forlock_node_heartbeat_age_seconds",
		"Seconds since the node's last heartbeat; absent until its first heartbeat since the control plane started.", []string{"node"}, nil)
	descCheck = prometheus.NewDesc("forlock_node_check_status",
		"Status of a node's health check: 0 OK, 1 WARN, 2 CRITICAL, 3 UNKNOWN (could not be measured).", []string{"node", "check"}, nil)
	descDiskFree = prometheus.NewDesc("forlock_node_disk_free_ratio",
		"Free share (0 to 1) of the file system holding a directory the node's disk checks watch (the state dir, Docker's data root, backup and WAL directories).",
		[]string{"node", "check", "path"}, nil)
	descMemUsed = prometheus.NewDesc("forlock_node_memory_used_ratio",
		"Share of the node's memory not available for new work (1 - MemAvailable/MemTotal), from the last heartbeat.", []string{"node"}, nil)
	descCPUUsed = prometheus.NewDesc("forlock_node_cpu_used_ratio",
		"Share of the node's CPU time spent busy between its last two health checks (0 to 1).", []string{"node"}, nil)
	descAPIP95 = prometheus.NewDesc("forlock_node_api_latency_p95_seconds",
		"95th percentile of the node's recent API health-endpoint response times.", []string{"node"}, nil)
	descDBConns = prometheus.NewDesc("forlock_node_db_connections",
		"Connections to the node's PostgreSQL in use.", []string{"node"}, nil)
	descDBMax = prometheus.NewDesc("forlock_node_db_connections_max",
		"Connections the node's PostgreSQL allows (its pool).", []string{"node"}, nil)
	descFailedLogins = prometheus.NewDesc("forlock_node_failed_logins_per_minute",
		"Failed logins in the last minute from one client address, for the node's worst addresses (at most 5).", []string{"node", "address"}, nil)
	descBlocked = prometheus.NewDesc("forlock_node_blocked_addresses",
		"Distinct client addresses the node's nginx refused (403, 429, 444) in the last minute.", []string{"node"}, nil)
	descCertExpiry = prometheus.NewDesc("forlock_node_certificate_expiry_timestamp_seconds",
		"When the certificate the node's nginx serves expires (Unix time), from the last health report.", []string{"node"}, nil)
	descBackupLast = prometheus.NewDesc("forlock_backup_last_success_timestamp_seconds",
		"When the node's newest available backup artifact of this kind (postgres, redis, config) was made (Unix time).", []string{"node", "kind"}, nil)
	descBackupBytes = prometheus.NewDesc("forlock_backup_last_size_bytes",
		"Stored bytes of the node's newest restore point with an available artifact (the sum of its available artifacts).", []string{"node"}, nil)
	descWALEnd = prometheus.NewDesc("forlock_wal_archived_end_timestamp_seconds",
		"End time of the node's newest archived WAL in the WAL catalog (Unix time).", []string{"node"}, nil)
	descStoreSize = prometheus.NewDesc("forlock_store_size_bytes", "Size of the control plane's bbolt database file.", nil, nil)
	descDiskFull  = prometheus.NewDesc("forlock_store_disk_full",
		"1 while the control plane's data disk is full (writes refused, reads and heartbeats go on), else 0.", nil, nil)
	descScrapeErr = prometheus.NewDesc("forlock_collector_errors_total",
		"Store reads that failed while collecting, since start; the metrics they feed are missing from that scrape.", nil, nil)
)

var states = []store.State{store.StateEnrolled, store.StateOnline, store.StateUnreachable, store.StateOffline}

// collector computes the fleet's metrics at scrape time.
type collector struct {
	fleet   Fleet
	catalog Catalog
	log     *slog.Logger
	now     func() time.Time

	mu      sync.Mutex // one scrape at a time: the backup cache is shared
	backups newest.Backups
	errors  float64
}

// Watch registers the collector of the fleet's state.
func (m *Metrics) Watch(fleet Fleet, catalog Catalog, log *slog.Logger) {
	m.Registry.MustRegister(&collector{fleet: fleet, catalog: catalog, log: log, now: time.Now})
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descNodes, descNodeState, descHeartbeatAge, descCheck, descDiskFree, descMemUsed,
		descCPUUsed, descAPIP95, descDBConns, descDBMax, descFailedLogins, descBlocked, descCertExpiry, descBackupLast, descBackupBytes, descWALEnd, descStoreSize, descDiskFull, descScrapeErr} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	samples := c.fleet.Samples()
	names := make(map[string]string, len(samples))
	count := map[store.State]int{}
	for _, s := range samples {
		names[s.ID] = s.Name
		count[s.State]++
		collectNode(ch, s, now)
	}
	for _, st := range states {
		ch <- prometheus.MustNewConstMetric(descNodes, prometheus.GaugeValue, float64(count[st]), string(st))
	}
	if err := c.backups.Update(c.catalog, now); err != nil {
		c.fail("backup catalog", err)
	} else {
		collectBackups(ch, &c.backups, names)
	}
	if ends, err := c.catalog.WalNewestEnds(); err != nil {
		c.fail("WAL catalog", err)
	} else {
		for id, t := range ends {
			if name, ok := names[id]; ok {
				ch <- prometheus.MustNewConstMetric(descWALEnd, prometheus.GaugeValue, unix(t), name)
			}
		}
	}
	if fi, err := os.Stat(c.catalog.Path()); err != nil {
		c.fail("database file", err)
	} else {
		ch <- prometheus.MustNewConstMetric(descStoreSize, prometheus.GaugeValue, float64(fi.Size()))
	}
	full := 0.0
	if c.catalog.Disk().Full {
		full = 1
	}
	ch <- prometheus.MustNewConstMetric(descDiskFull, prometheus.GaugeValue, full)
	ch <- prometheus.MustNewConstMetric(descScrapeErr, prometheus.CounterValue, c.errors)
}

func (c *collector) fail(what string, err error) {
	c.errors++
	c.log.Warn("metrics: reading "+what+" failed", "err", err)
}

func unix(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

// checkValue maps a check status to the metric's value; false for a status
// that is not set.
func checkValue(s forlockv1.CheckStatus) (float64, bool) {
	switch s {
	case forlockv1.CheckStatus_CHECK_STATUS_OK:
		return 0, true
	case forlockv1.CheckStatus_CHECK_STATUS_WARN:
		return 1, true
	case forlockv1.CheckStatus_CHECK_STATUS_CRITICAL:
		return 2, true
	case forlockv1.CheckStatus_CHECK_STATUS_UNKNOWN:
		return 3, true
	}
	return 0, false
}

// collectNode sends one node's series: its state, heartbeat age, checks,
// the checks' measurements (bounded by measureOf) and certificate expiry.
func collectNode(ch chan<- prometheus.Metric, s registry.Sample, now time.Time) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, append([]string{s.Name}, labels...)...)
	}
	gauge(descNodeState, 1, string(s.State))
	if !s.LastHeartbeat.IsZero() {
		gauge(descHeartbeatAge, max(0, now.Sub(s.LastHeartbeat).Seconds()))
	}
	checks := s.Health.GetChecks()
	if s.Archive != nil {
		checks = append(checks[:len(checks):len(checks)], s.Archive)
	}
	seen := map[string]bool{}
	for _, c := range checks {
		v, ok := checkValue(c.GetStatus())
		if !ok || c.GetName() == "" || seen[c.GetName()] {
			continue // a duplicate name would make the scrape fail
		}
		if len(seen) == MaxChecksPerNode {
			break
		}
		seen[c.GetName()] = true
		gauge(descCheck, v, c.GetName())
	}
	sent := collectMeasurements(gauge, checks)
	// An agent from before measurements: its host facts.
	if f := s.Facts; sent[descDiskFree] == 0 && f.GetDiskTotalBytes() > 0 {
		gauge(descDiskFree, float64(f.GetDiskFreeBytes())/float64(f.GetDiskTotalBytes()), "disk", "")
	}
	if f := s.Facts; sent[descMemUsed] == 0 && f.GetMemoryTotalBytes() > 0 {
		gauge(descMemUsed, 1-float64(f.GetMemoryAvailableBytes())/float64(f.GetMemoryTotalBytes()))
	}
	if na := s.Health.GetCertificate().GetNotAfter(); na != nil {
		gauge(descCertExpiry, unix(na.AsTime()))
	}
}

// measure is the metric a check's measurement feeds and how many series of
// it one node may have: a node's series stay within the budget whatever
// its agent reports.
type measure struct {
	desc    *prometheus.Desc
	subject bool // the measurement's subject is a label (path, address)
	limit   int
}

// measureOf names the metric of a check's measurement; false for one the
// control plane does not export.
func measureOf(check, name string) (measure, bool) {
	switch {
	case name == "free_ratio" && (check == "disk" || strings.HasPrefix(check, "disk/")):
		return measure{descDiskFree, true, 8}, true
	case check == "memory" && name == "used_ratio":
		return measure{descMemUsed, false, 1}, true
	case check == "cpu" && name == "used_ratio":
		return measure{descCPUUsed, false, 1}, true
	case check == "api" && name == "p95_seconds":
		return measure{descAPIP95, false, 1}, true
	case check == "postgres" && name == "connections":
		return measure{descDBConns, false, 1}, true
	case check == "postgres" && name == "max_connections":
		return measure{descDBMax, false, 1}, true
	case check == "logins" && name == "failed_logins_per_minute":
		return measure{descFailedLogins, true, 5}, true
	case check == "logins" && name == "blocked_addresses":
		return measure{descBlocked, false, 1}, true
	}
	return measure{}, false
}

// collectMeasurements sends the series of the checks' measurements (the
// API refused non-finite values and bounded their number) and returns how
// many it sent of each metric.
func collectMeasurements(gauge func(*prometheus.Desc, float64, ...string), checks []*forlockv1.CheckResult) map[*prometheus.Desc]int {
	count := map[*prometheus.Desc]int{}
	seen := map[string]bool{}
	for _, c := range checks {
		for _, m := range c.GetMeasurements() {
			ms, ok := measureOf(c.GetName(), m.GetName())
			if !ok || count[ms.desc] == ms.limit {
				continue
			}
			var labels []string
			switch {
			case ms.desc == descDiskFree:
				labels = []string{c.GetName(), m.GetSubject()}
			case ms.subject:
				labels = []string{m.GetSubject()}
			}
			key := ms.desc.String() + "\x00" + strings.Join(labels, "\x00")
			if seen[key] {
				continue // a duplicate would make the scrape fail
			}
			seen[key] = true
			count[ms.desc]++
			gauge(ms.desc, m.GetValue(), labels...)
		}
	}
	return count
}

func collectBackups(ch chan<- prometheus.Metric, b *newest.Backups, names map[string]string) {
	for id, n := range b.Nodes() {
		name, ok := names[id]
		if !ok {
			continue // a removed node's backups stay in the catalog, not in the metrics
		}
		for kind, t := range n.Last {
			if kind == forlockv1.ArtifactKind_ARTIFACT_KIND_UNSPECIFIED {
				continue
			}
			ch <- prometheus.MustNewConstMetric(descBackupLast, prometheus.GaugeValue, unix(t), name, word(kind.String(), "ARTIFACT_KIND_"))
		}
		if !n.LatestAt.IsZero() {
			ch <- prometheus.MustNewConstMetric(descBackupBytes, prometheus.GaugeValue, float64(n.LatestBytes), name)
		}
	}
}

var descAlerts = prometheus.NewDesc("forlock_alerts_firing",
	"Alerts the control plane's built-in alerting holds firing, by name and severity.", []string{"alertname", "severity"}, nil)

// alertCollector reads the built-in alerting's firing set at scrape time.
type alertCollector struct {
	counts func() map[[2]string]int
}

// WatchAlerts registers forlock_alerts_firing; counts returns how many
// alerts fire by [name, severity].
func (m *Metrics) WatchAlerts(counts func() map[[2]string]int) {
	m.Registry.MustRegister(alertCollector{counts: counts})
}

func (c alertCollector) Describe(ch chan<- *prometheus.Desc) { ch <- descAlerts }

func (c alertCollector) Collect(ch chan<- prometheus.Metric) {
	for k, n := range c.counts() {
		ch <- prometheus.MustNewConstMetric(descAlerts, prometheus.GaugeValue, float64(n), k[0], k[1])
	}
}

var descAuditIntact = prometheus.NewDesc("forlock_audit_chain_intact",
	"1 when the control plane's last periodic verification of the audit log's chain found it whole, 0 when it did not; absent before the first.",
	nil, nil)

// auditCollector reports the last periodic verification of the audit chain.
type auditCollector struct {
	state func() (checked bool, problem string)
}

// WatchAudit registers forlock_audit_chain_intact; state returns the last
// verification (checked false before the first).
func (m *Metrics) WatchAudit(state func() (checked bool, problem string)) {
	m.Registry.MustRegister(auditCollector{state: state})
}

func (c auditCollector) Describe(ch chan<- *prometheus.Desc) { ch <- descAuditIntact }

func (c auditCollector) Collect(ch chan<- prometheus.Metric) {
	checked, problem := c.state()
	if !checked {
		return
	}
	v := 1.0
	if problem != "" {
		v = 0
	}
	ch <- prometheus.MustNewConstMetric(descAuditIntact, prometheus.GaugeValue, v)
}
