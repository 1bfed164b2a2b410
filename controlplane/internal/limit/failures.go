package limit

import (
	"container/list"
	"sync"
	"time"
)

// Defaults of FailureConfig.
const (
	DefaultMaxFailures   = 20
	DefaultFailureWindow = time.Minute
	DefaultBlock         = time.Minute
	DefaultMaxAddrs      = 16384
)

// FailureConfig configures Failures. Zero fields take the defaults.
type FailureConfig struct {
	// Max is how many failures an address may have within Window; the one
	// that reaches it starts a block.
	Max int
	// Window is the period over which Max failures are allowed: an
	// address's count drains at Max per Window, so a slow trickle of typos
	// never blocks anyone.
	Window time.Duration
	// Block is how long a blocked address stays blocked.
	Block time.Duration
	// MaxAddrs bounds the addresses tracked; at the bound the least recently
	// seen one is forgotten.
	MaxAddrs int
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

func (c FailureConfig) withDefaults() FailureConfig {
	if c.Max <= 0 {
		c.Max = DefaultMaxFailures
	}
	if c.Window <= 0 {
		c.Window = DefaultFailureWindow
	}
	if c.Block <= 0 {
		c.Block = DefaultBlock
	}
	if c.MaxAddrs <= 0 {
		c.MaxAddrs = DefaultMaxAddrs
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Failures counts failed authentications per address: a leaky bucket of
// Max failures that drains at Max per Window; the failure that fills it
// blocks the address for Block. Safe for concurrent use.
type Failures struct {
	cfg   FailureConfig
	drain float64 // failures forgotten per second

	mu    sync.Mutex
	addrs map[string]*list.Element // of *failEntry
	lru   *list.List               // front: most recently seen
}

type failEntry struct {
	key   string
	level float64   // failures not yet drained, as of at
	at    time.Time // when level was last brought up to date
	until time.Time // blocked until; zero when not blocked
}

// NewFailures returns an empty limiter.
func NewFailures(cfg FailureConfig) *Failures {
	cfg = cfg.withDefaults()
	return &Failures{
		cfg:   cfg,
		drain: float64(cfg.Max) / cfg.Window.Seconds(),
		addrs: map[string]*list.Element{},
		lru:   list.New(),
	}
}

// Max is the number of failures that blocks an address.
func (f *Failures) Max() int { return f.cfg.Max }

// Blocked reports whether key is blocked, and for how much longer.
func (f *Failures) Blocked(key string) (time.Duration, bool) {
	now := f.cfg.Now()
	f.mu.Lock()
	defer f.mu.Unlock()
	el, ok := f.addrs[key]
	if !ok {
		return 0, false
	}
	e := el.Value.(*failEntry)
	if left := e.until.Sub(now); left > 0 {
		f.lru.MoveToFront(el)
		return left, true
	}
	return 0, false
}

// Fail records one failed authentication from key. It reports the block
// length when this failure started a block; a failure while the address is
// already blocked is not counted.
func (f *Failures) Fail(key string) (time.Duration, bool) {
	now := f.cfg.Now()
	f.mu.Lock()
	defer f.mu.Unlock()
	e := f.entry(key, now)
	if e.until.After(now) {
		return 0, false
	}
	if d := now.Sub(e.at).Seconds(); d > 0 {
		e.level = max(0, e.level-d*f.drain)
	}
	e.at = now
	e.level++
	// Half a failure of slack: a burst of Max failures blocks on its last
	// one even though a little has drained while it came in.
	if e.level < float64(f.cfg.Max)-0.5 {
		return 0, false
	}
	e.level = 0
	e.until = now.Add(f.cfg.Block)
	return f.cfg.Block, true
}

// Tracked is the number of addresses held, for tests and metrics.
func (f *Failures) Tracked() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.addrs)
}

// entry returns key's entry, made and marked most recent, evicting the least
// recently seen address when the table is full. Called with mu held.
func (f *Failures) entry(key string, now time.Time) *failEntry {
	if el, ok := f.addrs[key]; ok {
		f.lru.MoveToFront(el)
		return el.Value.(*failEntry)
	}
	for len(f.addrs) >= f.cfg.MaxAddrs {
		old := f.lru.Back()
		f.lru.Remove(old)
		delete(f.addrs, old.Value.(*failEntry).key)
	}
	e := &failEntry{key: key, at: now}
	f.addrs[key] = f.lru.PushFront(e)
	return e
}
