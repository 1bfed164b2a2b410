package controlplane

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/forlock/fleet/controlplane/internal/limit"
)

// Defaults of Limits.
const (
	DefaultAuthFailures          = limit.DefaultMaxFailures
	DefaultAuthFailureWindow     = limit.DefaultFailureWindow
	DefaultAuthBlock             = limit.DefaultBlock
	DefaultTrackedAddresses      = limit.DefaultMaxAddrs
	DefaultUnauthConnsPerAddress = limit.DefaultConnsPerAddr
	DefaultHandshakeTimeout      = 10 * time.Second
	DefaultIdleConnTimeout       = 2 * time.Minute
	DefaultMaxHeaderBytes        = 64 << 10
)

// Limits bound what a client without a valid credential, a hostile or broken
// agent and a full disk can cost the control plane. A client address is an IPv4 address or an IPv6 /64. Nothing here
// ever counts or slows a valid credential: an agent's connection with a
// fleet client certificate, or a call with a valid token. Zero fields take
// the defaults.
type Limits struct {
	// AuthFailures is how many failed authentications (admin token, join
	// token, client certificate) an address may make per AuthFailureWindow;
	// then its wrong credentials get ResourceExhausted for AuthBlock.
	AuthFailures int
	// AuthFailureWindow is the period of AuthFailures (default 1m).
	AuthFailureWindow time.Duration
	// AuthBlock is how long an address over AuthFailures is refused (1m).
	AuthBlock time.Duration
	// TrackedAddresses bounds the addresses whose failures are remembered;
	// when full, the least recently seen one is forgotten.
	TrackedAddresses int
	// UnauthConnsPerAddress caps an address's open connections that have
	// neither a fleet client certificate nor a call with a valid token;
	// a connection over the cap is closed right after its TLS handshake.
	UnauthConnsPerAddress int
	// HandshakeTimeout bounds the TLS handshake and the HTTP/2 preface of a
	// new connection.
	HandshakeTimeout time.Duration
	// IdleConnTimeout closes a connection that has had no call in progress
	// for this long (an agent's control stream keeps its connection busy).
	IdleConnTimeout time.Duration
	// MaxHeaderBytes caps a request's metadata (HTTP/2 header list); a
	// larger one is refused before any handler or authentication.
	MaxHeaderBytes int

	// DiskReserve is the free space the data dir's file system must keep:
	// below it writes (submits, token changes, node removal, cancels) are
	// refused with "control plane data disk is full" while reads and
	// heartbeats go on. Default 64 MiB; negative keeps no reserve.
	DiskReserve int64
	// ProgressEventInterval is the least time between two stored progress
	// events of one task (default 1s); ProgressMessageMax caps a progress
	// message in bytes (default 512).
	ProgressEventInterval time.Duration
	ProgressMessageMax    int
	// JobEventsMax + JobEventsPerTask * tasks is a job's event cap (default
	// 1000 + 20 per task); past it one progress event in
	// JobEventsSampleEvery (default 100) is stored. State changes are
	// always stored.
	JobEventsMax, JobEventsPerTask, JobEventsSampleEvery int
	// AgentControlRate is the heartbeats, pings and pongs a second one
	// agent stream may send (default max(10, 5 per heartbeat interval)),
	// AgentControlBurst how many at once (default twice the rate, at least
	// 20). The excess is dropped; a sustained flood closes the stream.
	AgentControlRate  float64
	AgentControlBurst int
}

func (l *Limits) setDefaults() {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	def(&l.AuthFailures, DefaultAuthFailures)
	defDur(&l.AuthFailureWindow, DefaultAuthFailureWindow)
	defDur(&l.AuthBlock, DefaultAuthBlock)
	def(&l.TrackedAddresses, DefaultTrackedAddresses)
	def(&l.UnauthConnsPerAddress, DefaultUnauthConnsPerAddress)
	defDur(&l.HandshakeTimeout, DefaultHandshakeTimeout)
	defDur(&l.IdleConnTimeout, DefaultIdleConnTimeout)
	def(&l.MaxHeaderBytes, DefaultMaxHeaderBytes)
}

func (l *Limits) validate() error {
	for _, c := range []struct {
		name      string
		v, lo, hi int
	}{
		{"auth failures", l.AuthFailures, 1, 100000},
		{"tracked addresses", l.TrackedAddresses, 100, 10000000},
		{"unauthenticated connections per address", l.UnauthConnsPerAddress, 1, 100000},
		{"max header bytes", l.MaxHeaderBytes, 8 << 10, 16 << 20},
	} {
		if c.v < c.lo || c.v > c.hi {
			return fmt.Errorf("limits: %s %d: must be between %d and %d", c.name, c.v, c.lo, c.hi)
		}
	}
	for _, c := range []struct {
		name      string
		v, lo, hi time.Duration
	}{
		{"auth failure window", l.AuthFailureWindow, time.Second, 24 * time.Hour},
		{"auth block", l.AuthBlock, time.Second, 24 * time.Hour},
		{"handshake timeout", l.HandshakeTimeout, 100 * time.Millisecond, 5 * time.Minute},
		{"idle connection timeout", l.IdleConnTimeout, time.Second, 24 * time.Hour},
	} {
		if c.v < c.lo || c.v > c.hi {
			return fmt.Errorf("limits: %s %s: must be between %s and %s", c.name, c.v, c.lo, c.hi)
		}
	}
	switch {
	case l.DiskReserve < -1:
		return fmt.Errorf("limits: disk reserve %d: give 0 (default 64MiB), -1 (none) or a size", l.DiskReserve)
	case l.ProgressEventInterval < 0 || l.ProgressEventInterval > time.Hour:
		return fmt.Errorf("limits: progress event interval %s: give 0 (default 1s) to 1h", l.ProgressEventInterval)
	case l.ProgressMessageMax < 0 || l.ProgressMessageMax > 4096:
		return fmt.Errorf("limits: progress message max %d: give 0 (default 512) to 4096 bytes", l.ProgressMessageMax)
	case l.JobEventsMax < 0 || l.JobEventsPerTask < 0 || l.JobEventsSampleEvery < 0:
		return fmt.Errorf("limits: job event limits must not be negative")
	case l.AgentControlRate < 0 || l.AgentControlBurst < 0:
		return fmt.Errorf("limits: agent control rate and burst must not be negative")
	}
	return nil
}

// FileLimits is the limits section of the config file.
type FileLimits struct {
	AuthFailures          int    `yaml:"auth_failures"`
	AuthFailureWindow     string `yaml:"auth_failure_window"`
	AuthBlock             string `yaml:"auth_block"`
	TrackedAddresses      int    `yaml:"tracked_addresses"`
	UnauthConnsPerAddress int    `yaml:"unauthenticated_conns_per_address"`
	HandshakeTimeout      string `yaml:"handshake_timeout"`
	IdleConnTimeout       string `yaml:"idle_conn_timeout"`
	MaxHeaderBytes        int    `yaml:"max_header_bytes"`
	// DiskReserve is a size: "64MiB", "512KiB", "1GiB", bytes, or "0" for
	// none.
	DiskReserve           string  `yaml:"disk_reserve"`
	ProgressEventInterval string  `yaml:"progress_event_interval"`
	ProgressMessageMax    int     `yaml:"progress_message_max"`
	JobEventsMax          int     `yaml:"job_events_max"`
	JobEventsPerTask      int     `yaml:"job_events_per_task"`
	JobEventsSampleEvery  int     `yaml:"job_events_sample_every"`
	AgentControlRate      float64 `yaml:"agent_control_rate"`
	AgentControlBurst     int     `yaml:"agent_control_burst"`
}

// limits turns the section into Limits (zero where unset).
func (f FileLimits) limits() (Limits, error) {
	l := Limits{AuthFailures: f.AuthFailures, TrackedAddresses: f.TrackedAddresses,
		UnauthConnsPerAddress: f.UnauthConnsPerAddress, MaxHeaderBytes: f.MaxHeaderBytes,
		ProgressMessageMax: f.ProgressMessageMax, JobEventsMax: f.JobEventsMax, JobEventsPerTask: f.JobEventsPerTask,
		JobEventsSampleEvery: f.JobEventsSampleEvery, AgentControlRate: f.AgentControlRate, AgentControlBurst: f.AgentControlBurst}
	for _, d := range []struct {
		name string
		in   string
		out  *time.Duration
	}{
		{"auth_failure_window", f.AuthFailureWindow, &l.AuthFailureWindow},
		{"auth_block", f.AuthBlock, &l.AuthBlock},
		{"handshake_timeout", f.HandshakeTimeout, &l.HandshakeTimeout},
		{"idle_conn_timeout", f.IdleConnTimeout, &l.IdleConnTimeout},
		{"progress_event_interval", f.ProgressEventInterval, &l.ProgressEventInterval},
	} {
		if d.in == "" {
			continue
		}
		v, err := time.ParseDuration(d.in)
		if err != nil {
			return l, fmt.Errorf("limits %s %q: want a duration such as 1m", d.name, d.in)
		}
		*d.out = v
	}
	var err error
	if l.DiskReserve, err = parseReserve(f.DiskReserve); err != nil {
		return l, fmt.Errorf("limits disk_reserve: %w", err)
	}
	return l, nil
}

// override sets the fields given on the command line (non-zero) over l.
func (l Limits) override(flags Limits) Limits {
	pick := func(v *int, f int) {
		if f != 0 {
			*v = f
		}
	}
	pickDur := func(v *time.Duration, f time.Duration) {
		if f != 0 {
			*v = f
		}
	}
	pick(&l.AuthFailures, flags.AuthFailures)
	pickDur(&l.AuthFailureWindow, flags.AuthFailureWindow)
	pickDur(&l.AuthBlock, flags.AuthBlock)
	pick(&l.TrackedAddresses, flags.TrackedAddresses)
	pick(&l.UnauthConnsPerAddress, flags.UnauthConnsPerAddress)
	pickDur(&l.HandshakeTimeout, flags.HandshakeTimeout)
	pickDur(&l.IdleConnTimeout, flags.IdleConnTimeout)
	pick(&l.MaxHeaderBytes, flags.MaxHeaderBytes)
	pickDur(&l.ProgressEventInterval, flags.ProgressEventInterval)
	pick(&l.ProgressMessageMax, flags.ProgressMessageMax)
	pick(&l.JobEventsMax, flags.JobEventsMax)
	pick(&l.JobEventsPerTask, flags.JobEventsPerTask)
	pick(&l.JobEventsSampleEvery, flags.JobEventsSampleEvery)
	pick(&l.AgentControlBurst, flags.AgentControlBurst)
	if flags.DiskReserve != 0 {
		l.DiskReserve = flags.DiskReserve
	}
	if flags.AgentControlRate != 0 {
		l.AgentControlRate = flags.AgentControlRate
	}
	return l
}

// parseReserve parses a disk reserve: "" is the default (0), "0" none (-1).
func parseReserve(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	n, err := parseBytes(s)
	if err != nil {
		return 0, fmt.Errorf("disk reserve: %w", err)
	}
	if n == 0 {
		return -1, nil
	}
	return n, nil
}

// parseBytes parses "64MiB", "512KiB", "2GiB" or a plain byte count.
func parseBytes(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}}
	num, mult := strings.TrimSpace(s), int64(1)
	for _, u := range units {
		if v, ok := strings.CutSuffix(num, u.suffix); ok {
			num, mult = strings.TrimSpace(v), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 || n > (1<<50)/mult {
		return 0, fmt.Errorf("size %q: want bytes or a number with KiB, MiB or GiB, e.g. 64MiB", s)
	}
	return n * mult, nil
}
