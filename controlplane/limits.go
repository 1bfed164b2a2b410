package controlplane

import (
	"fmt"
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
