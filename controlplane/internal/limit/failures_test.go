package limit

import (
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// clock is a settable time for the limiter.
type clock struct{ t time.Time }

func (c *clock) now() time.Time            { return c.t }
func (c *clock) add(d time.Duration)       { c.t = c.t.Add(d) }
func newClock() *clock                     { return &clock{t: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)} }
func fail(f *Failures, key string) bool    { _, started := f.Fail(key); return started }
func blocked(f *Failures, key string) bool { _, b := f.Blocked(key); return b }

func TestFailures(t *testing.T) {
	type step struct {
		wait    time.Duration
		fails   int  // failures recorded after wait
		started bool // whether the last of them started a block
		blocked bool // Blocked afterwards
	}
	for _, tt := range []struct {
		name  string
		cfg   FailureConfig
		steps []step
	}{
		{"the 20th failure in a burst blocks", FailureConfig{}, []step{
			{fails: 19, blocked: false},
			{fails: 1, started: true, blocked: true},
		}},
		{"the block lasts one minute", FailureConfig{}, []step{
			{fails: 20, started: true, blocked: true},
			{wait: 59 * time.Second, blocked: true},
			{wait: 2 * time.Second, blocked: false},
		}},
		{"failures while blocked are not counted", FailureConfig{}, []step{
			{fails: 20, started: true, blocked: true},
			{fails: 500, started: false, blocked: true},
			{wait: 61 * time.Second, fails: 19, started: false, blocked: false},
		}},
		{"a slow trickle never blocks", FailureConfig{}, []step{
			{fails: 15}, {wait: 30 * time.Second, fails: 10}, {wait: 30 * time.Second, fails: 10},
			{wait: 30 * time.Second, fails: 10, blocked: false},
		}},
		{"settings are honoured", FailureConfig{Max: 3, Window: 10 * time.Second, Block: 5 * time.Second}, []step{
			{fails: 3, started: true, blocked: true},
			{wait: 6 * time.Second, blocked: false},
			{fails: 2, blocked: false},
			{wait: 10 * time.Second, fails: 2, blocked: false}, // drained at 3 per 10 s
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := newClock()
			cfg := tt.cfg
			cfg.Now = c.now
			f := NewFailures(cfg)
			for i, s := range tt.steps {
				c.add(s.wait)
				started := false
				for range s.fails {
					started = fail(f, "192.0.2.1")
				}
				require.Equal(t, s.started, started, "step %d: block started", i)
				require.Equal(t, s.blocked, blocked(f, "192.0.2.1"), "step %d: blocked", i)
			}
		})
	}
}

// One address's block touches no other.
func TestFailuresPerAddress(t *testing.T) {
	f := NewFailures(FailureConfig{})
	for range 20 {
		fail(f, "192.0.2.1")
	}
	require.True(t, blocked(f, "192.0.2.1"))
	require.False(t, blocked(f, "192.0.2.2"))
	left, ok := f.Blocked("192.0.2.1")
	require.True(t, ok)
	require.InDelta(t, time.Minute.Seconds(), left.Seconds(), 1)
}

// At the bound the least recently seen address is forgotten, never a busy
// one; memory stays at MaxAddrs entries.
func TestFailuresBounded(t *testing.T) {
	c := newClock()
	f := NewFailures(FailureConfig{MaxAddrs: 100, Now: c.now})
	for range 20 {
		fail(f, "198.51.100.1")
	}
	for i := range 1000 {
		fail(f, fmt.Sprintf("10.0.%d.%d", i/256, i%256))
		if i%50 == 0 {
			require.True(t, blocked(f, "198.51.100.1"), "a blocked address seen again stays tracked")
		}
	}
	require.Equal(t, 100, f.Tracked())
	require.True(t, blocked(f, "198.51.100.1"))
	// A forgotten address starts again from zero.
	for i := range 1000 {
		fail(f, fmt.Sprintf("10.1.%d.%d", i/256, i%256))
	}
	require.False(t, blocked(f, "198.51.100.1"), "forgotten after 1000 newer addresses")
	require.Equal(t, 100, f.Tracked())
}

func TestKey(t *testing.T) {
	for _, tt := range []struct {
		addr net.Addr
		want string
	}{
		{&net.TCPAddr{IP: net.ParseIP("127.0.0.2"), Port: 5000}, "127.0.0.2"},
		{&net.TCPAddr{IP: net.ParseIP("::ffff:192.0.2.7"), Port: 1}, "192.0.2.7"},
		{&net.TCPAddr{IP: net.ParseIP("2001:db8:1:2:aaaa::1"), Port: 443}, "2001:db8:1:2::/64"},
		{&net.TCPAddr{IP: net.ParseIP("2001:db8:1:2:bbbb::9"), Port: 443}, "2001:db8:1:2::/64"},
		{&net.UnixAddr{Name: "/run/x.sock", Net: "unix"}, "/run/x.sock"},
		{nil, "unknown"},
	} {
		require.Equal(t, tt.want, Key(tt.addr), "%v", tt.addr)
	}
	require.Equal(t, "2001:db8::1", Host(&net.TCPAddr{IP: net.ParseIP("2001:db8::1"), Port: 443}))
	require.Equal(t, "127.0.0.2", Host(&net.TCPAddr{IP: net.ParseIP("127.0.0.2"), Port: 443}))
}
