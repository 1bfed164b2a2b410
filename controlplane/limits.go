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

// Limits bound what a client without a valid credential can cost the control
// plane. A client address is an IPv4 address or an IPv6 /64. Nothing here
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
}

// limits turns the section into Limits (zero where unset).
func (f FileLimits) limits() (Limits, error) {
	l := Limits{AuthFailures: f.AuthFailures, TrackedAddresses: f.TrackedAddresses,
		UnauthConnsPerAddress: f.UnauthConnsPerAddress, MaxHeaderBytes: f.MaxHeaderBytes}
	for _, d := range []struct {
		name string
		in   string
		out  *time.Duration
	}{
		{"auth_failure_window", f.AuthFailureWindow, &l.AuthFailureWindow},
		{"auth_block", f.AuthBlock, &l.AuthBlock},
		{"handshake_timeout", f.HandshakeTimeout, &l.HandshakeTimeout},
		{"idle_conn_timeout", f.IdleConnTimeout, &l.IdleConnTimeout},
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
	return l
}
