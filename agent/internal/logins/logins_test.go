package logins

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/forlock/fleet/agent/internal/dockerrt"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var t0 = time.Date(2026, 12, 4, 3, 0, 0, 0, time.UTC)

func line(addr, path string, status int, xff string) string {
	l := fmt.Sprintf(`%s - - [04/Dec/2026:03:00:00 +0000] "POST %s HTTP/1.1" %d 0 "-" "curl"`, addr, path, status)
	if xff != "" {
		l += ` "` + xff + `"`
	}
	return l
}

func TestObserve(t *testing.T) {
	now := t0
	w := New(Config{Now: func() time.Time { return now }, Ignored: []string{"/api/v1/health"},
		Trusted: Proxies(t, "10.0.0.0/8")})
	feed := func(at time.Time, stream, text string) {
		w.mu.Lock()
		defer w.mu.Unlock()
		if stream == "stdout" {
			w.observe(dockerrt.LogLine{Time: at, Stream: stream, Text: text})
		}
	}
	for i := range 30 {
		feed(t0.Add(time.Duration(i)*time.Second), "stdout", line("172.18.0.5", "/api/v1/auth/login", 401, ""))
	}
	for range 2 {
		feed(t0, "stdout", line("172.18.0.6", "/api/v1/auth/login", 401, ""))
	}
	// A long user agent makes a line longer than MaxLine: cut, still counted.
	feed(t0, "stdout", strings.Replace(line("172.18.0.6", "/api/v1/auth/login", 401, ""), `"curl"`, `"`+strings.Repeat("A", 20<<10)+`"`, 1))
	feed(t0, "stdout", line("172.18.0.7", "/api/v1/auth/login", 200, ""))           // a success
	feed(t0, "stdout", line("172.18.0.7", "/api/v1/vault/items", 401, ""))          // not a login path
	feed(t0, "stdout", line("172.18.0.8", "/api/v1/auth/login", 403, ""))           // refused, not a failure
	feed(t0, "stdout", line("172.18.0.9", "/x", 429, ""))                           // refused
	feed(t0, "stdout", line("172.18.0.1", "/api/v1/health", 403, ""))               // the agent's probe
	feed(t0, "stdout", line("10.1.1.1", "/api/v1/auth/login", 401, "198.51.100.4")) // behind a trusted proxy
	feed(t0, "stdout", "garbage")

	now = t0.Add(30 * time.Second)
	s := w.Snapshot()
	assert.Equal(t, []Count{{netip.MustParseAddr("172.18.0.5"), 30}, {netip.MustParseAddr("172.18.0.6"), 3},
		{netip.MustParseAddr("198.51.100.4"), 1}}, s.Failed)
	assert.Equal(t, 2, s.Blocked)
	assert.Equal(t, uint64(1), s.Unparsed)

	// The window slides: at t0+75s only the failures of t0+16s.. remain.
	now = t0.Add(75 * time.Second)
	s = w.Snapshot()
	assert.Equal(t, []Count{{netip.MustParseAddr("172.18.0.5"), 14}}, s.Failed)
	assert.Zero(t, s.Blocked)
	now = t0.Add(2 * time.Minute)
	assert.Empty(t, w.Snapshot().Failed)
	assert.Zero(t, w.win.lru.Len(), "idle entries are dropped")
}

func Proxies(t *testing.T, s ...string) []netip.Prefix {
	t.Helper()
	p, err := ParseProxies(s)
	require.NoError(t, err)
	return p
}

func TestParseProxies(t *testing.T) {
	p, err := ParseProxies([]string{"10.0.0.0/8", "192.0.2.7", "2001:db8::/32", "10.1.2.3/8"})
	require.NoError(t, err)
	assert.Equal(t, "[10.0.0.0/8 192.0.2.7/32 2001:db8::/32 10.0.0.0/8]", fmt.Sprint(p))
	for _, bad := range []string{"", "10.0.0.0/33", "host.example"} {
		_, err := ParseProxies([]string{bad})
		require.ErrorContains(t, err, "want a CIDR", bad)
	}
}

// TestBoundedAddresses: a spray from more addresses than the cap keeps the
// cap, counts the evictions and keeps the address still attacking.
func TestBoundedAddresses(t *testing.T) {
	w := newWindow(100)
	attacker := netip.MustParseAddr("192.0.2.1")
	a := netip.MustParseAddr("2001:db8::")
	for i := range 10000 {
		if i%50 == 0 {
			w.record(attacker, t0, true, false)
		}
		w.record(a, t0, true, true)
		a = a.Next()
	}
	assert.Equal(t, 100, w.lru.Len())
	assert.Len(t, w.entries, 100)
	assert.Equal(t, uint64(10000+1-100), w.evicted)
	failed, blocked := w.read(t0)
	assert.Equal(t, Count{attacker, 200}, failed[0])
	assert.Equal(t, 99, blocked)
}

// fakeSource serves scripted log sessions: each call to Logs plays the next
// one, then ends (as a stopped container's log does) or fails.
type fakeSource struct {
	mu       sync.Mutex
	sessions []func(fn func(dockerrt.LogLine) error) error
	calls    []dockerrt.LogOptions
}

func (f *fakeSource) Logs(ctx context.Context, service string, o dockerrt.LogOptions, fn func(dockerrt.LogLine) error) error {
	f.mu.Lock()
	f.calls = append(f.calls, o)
	var s func(func(dockerrt.LogLine) error) error
	if len(f.sessions) > 0 {
		s, f.sessions = f.sessions[0], f.sessions[1:]
	}
	f.mu.Unlock()
	if service != "nginx" || !o.Follow {
		return errors.New("want nginx, followed")
	}
	if s == nil {
		<-ctx.Done()
		return ctx.Err()
	}
	return s(fn)
}

func TestRunReattaches(t *testing.T) {
	l := func(sec int, stream, text string) dockerrt.LogLine {
		return dockerrt.LogLine{Time: t0.Add(time.Duration(sec) * time.Second), Stream: stream, Text: text}
	}
	fail := line("172.18.0.5", "/api/v1/auth/login", 401, "")
	src := &fakeSource{sessions: []func(func(dockerrt.LogLine) error) error{
		func(fn func(dockerrt.LogLine) error) error {
			for _, x := range []dockerrt.LogLine{l(1, "stdout", fail), l(2, "stderr", fail), l(3, "stdout", fail)} {
				_ = fn(x)
			}
			return nil // the container stopped
		},
		func(func(dockerrt.LogLine) error) error { return errors.New("no container for service nginx") },
		func(fn func(dockerrt.LogLine) error) error {
			// Re-attached from second 3: its lines come again, then new ones.
			for _, x := range []dockerrt.LogLine{l(3, "stdout", fail), l(4, "stdout", fail)} {
				_ = fn(x)
			}
			return nil
		},
	}}
	now := t0.Add(10 * time.Second)
	var mu sync.Mutex
	w := New(Config{Source: src, Now: func() time.Time { mu.Lock(); defer mu.Unlock(); return now }})
	mu.Lock()
	now = t0 // Run starts at t0
	mu.Unlock()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error)
	go func() { done <- w.Run(ctx) }()
	require.Eventually(t, func() bool {
		src.mu.Lock()
		defer src.mu.Unlock()
		return len(src.calls) >= 4
	}, 20*time.Second, 10*time.Millisecond)
	mu.Lock()
	now = t0.Add(10 * time.Second)
	mu.Unlock()
	s := w.Snapshot()
	assert.Equal(t, []Count{{netip.MustParseAddr("172.18.0.5"), 3}}, s.Failed, "stderr skipped, repeated line once")
	assert.True(t, s.Following)
	assert.Empty(t, s.Problem)
	src.mu.Lock()
	assert.True(t, src.calls[0].Since.Equal(t0))
	assert.True(t, src.calls[2].Since.Equal(t0.Add(3*time.Second)))
	assert.True(t, src.calls[3].Since.Equal(t0.Add(4*time.Second)))
	src.mu.Unlock()
	cancel()
	require.NoError(t, <-done)
	assert.Contains(t, w.Snapshot().Problem, "cannot follow the nginx container's log")
}

func TestUnconfigured(t *testing.T) {
	w := New(Config{Unconfigured: "cannot set up the Docker Engine client"})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	require.NoError(t, w.Run(ctx))
	s := w.Snapshot()
	assert.False(t, s.Following)
	assert.Equal(t, "cannot set up the Docker Engine client", s.Problem)
}
