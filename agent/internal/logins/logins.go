// Package logins watches the node's nginx access log for the guide's
// security signals: failed logins per client address per minute and the
// addresses nginx refused.
//
// A Watcher follows the nginx container's stdout through the Docker
// Engine's logs API (the access log; nginx's error log is on stderr and is
// skipped), from the moment it attaches, and parses each line with package
// accesslog. A failed login is a request to one of the login paths that
// nginx answered 401: the API's answer to a wrong password or an unknown
// user. A refusal ("blocked") is any request answered 403, 429 or 444,
// nginx's answers when its deny rules, rate limits or `return 444` turn a
// client away. A 403 on a login path is a refusal, not a failed login: the
// client never got to try a password. The client of a line is the address
// nginx saw, or the X-Forwarded-For client behind a trusted proxy (see
// accesslog.Entry.Client).
//
// What can go wrong, and what the watcher does about it:
//   - The log lines are attacker-influenced (paths, headers, user names).
//     Lines are cut at MaxLine, refused when they do not parse, and never
//     logged; only failures and refusals make a per-address entry, and at
//     most MaxAddresses entries are kept (the oldest is evicted and
//     counted), so memory stays bounded whatever addresses an attacker uses.
//   - The container is restarted or recreated (an upgrade, a cert_rotate):
//     the log ends or the container is gone. The watcher finds the container
//     by name again and re-attaches from the last line it saw, with backoff.
//   - The Docker Engine cannot be reached: the watcher says so, and the
//     check reports UNKNOWN with the reason while it keeps retrying.
//   - The agent's own probes (the API health endpoints in Config.Ignored)
//     never count: they are not login paths, and a refusal of them is not
//     counted either, since an operator's nginx may log them from the same
//     address as real clients (the docker bridge gateway, for requests
//     through a published port).
package logins

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/forlock/fleet/agent/internal/accesslog"
	"github.com/forlock/fleet/agent/internal/backoff"
	"github.com/forlock/fleet/agent/internal/dockerrt"
)

// Defaults.
const (
	DefaultMaxAddresses = 10000
	DefaultLoginPath    = "/api/v1/auth/login"
	// MaxLine is the longest line read; the rest of a longer one is cut.
	MaxLine = 8 << 10
)

// BlockedStatuses are nginx's refusals: deny (403), limit_req/limit_conn
// (429 when configured so, as the guide does) and `return 444`.
var BlockedStatuses = []int{403, 429, 444}

// Source reads a container's log (dockerrt.Runtime).
type Source interface {
	Logs(ctx context.Context, service string, o dockerrt.LogOptions, fn func(dockerrt.LogLine) error) error
}

// Config configures a Watcher.
type Config struct {
	// Source reads the logs; nil leaves the watcher unconfigured, and
	// Unconfigured says why.
	Source Source
	// Unconfigured is reported while Source is nil.
	Unconfigured string
	// Service is nginx's service, "nginx" unless set.
	Service string
	// LoginPaths are the API's login endpoints; empty means
	// DefaultLoginPath.
	LoginPaths []string
	// Ignored are the agent's own probe paths: never counted.
	Ignored []string
	// Trusted are the proxies whose X-Forwarded-For is believed.
	Trusted accesslog.Proxies
	// MaxAddresses caps the addresses tracked; 0 means DefaultMaxAddresses.
	MaxAddresses int
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Watcher follows nginx's access log and keeps the last minute's signals.
type Watcher struct {
	cfg Config

	mu        sync.Mutex
	win       *window
	following bool
	lastErr   error
	since     time.Time // of the last line seen, to re-attach from
	bad       uint64    // lines that did not parse
}

// New returns a Watcher; Run follows the log.
func New(cfg Config) *Watcher {
	if cfg.Service == "" {
		cfg.Service = "nginx"
	}
	if len(cfg.LoginPaths) == 0 {
		cfg.LoginPaths = []string{DefaultLoginPath}
	}
	if cfg.MaxAddresses <= 0 {
		cfg.MaxAddresses = DefaultMaxAddresses
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Watcher{cfg: cfg, win: newWindow(cfg.MaxAddresses)}
}

// Run follows the log until ctx ends, re-attaching after every end or error.
func (w *Watcher) Run(ctx context.Context) error {
	if w.cfg.Source == nil {
		<-ctx.Done()
		return nil
	}
	bo := backoff.New(500*time.Millisecond, 30*time.Second)
	w.mu.Lock()
	w.since = w.cfg.Now()
	w.mu.Unlock()
	for {
		err := w.follow(ctx, bo)
		w.mu.Lock()
		w.following = false
		if err == nil {
			err = errors.New("the log ended (container stopped?)")
		}
		w.lastErr = err
		w.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(bo.Next()):
		}
	}
}

// follow reads the log from the last line seen until it ends. The watcher
// counts as following from the call on: the logs API says nothing when it
// attaches, and a quiet nginx logs nothing, while a missing container or
// Engine makes the call fail at once.
func (w *Watcher) follow(ctx context.Context, bo *backoff.Backoff) error {
	w.mu.Lock()
	since := w.since
	w.following, w.lastErr = true, nil
	w.mu.Unlock()
	first := true
	return w.cfg.Source.Logs(ctx, w.cfg.Service, dockerrt.LogOptions{Follow: true, Since: since}, func(l dockerrt.LogLine) error {
		w.mu.Lock()
		defer w.mu.Unlock()
		if first {
			first = false
			bo.Reset()
		}
		// Since is in whole seconds: lines already seen come again.
		if !l.Time.IsZero() && !l.Time.After(w.since) {
			return nil
		}
		if !l.Time.IsZero() {
			w.since = l.Time
		}
		if l.Stream != "stdout" {
			return nil
		}
		w.observe(l)
		return nil
	})
}

// observe records one stdout line. The caller holds mu.
func (w *Watcher) observe(l dockerrt.LogLine) {
	text := l.Text
	if len(text) > MaxLine {
		text = text[:MaxLine]
	}
	e, err := accesslog.Parse(text)
	if err != nil {
		w.bad++
		return
	}
	if slices.Contains(w.cfg.Ignored, e.Path) {
		return
	}
	fail := e.Status == 401 && slices.Contains(w.cfg.LoginPaths, e.Path)
	blocked := slices.Contains(BlockedStatuses, e.Status)
	if !fail && !blocked {
		return
	}
	at := l.Time
	if at.IsZero() {
		at = w.cfg.Now()
	}
	w.win.record(e.Client(w.cfg.Trusted), at, fail, blocked)
}

// Snapshot is what the watcher saw in the last minute.
type Snapshot struct {
	// Following says the log is being read now; Problem says why not.
	Following bool
	Problem   string
	// Failed are the addresses with failed logins, worst first.
	Failed []Count
	// Blocked counts the distinct addresses refused.
	Blocked int
	// Evicted counts addresses dropped for room since the start.
	Evicted uint64
	// Unparsed counts stdout lines that were not access-log lines.
	Unparsed uint64
}

// Snapshot reads the last minute.
func (w *Watcher) Snapshot() Snapshot {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := Snapshot{Following: w.following, Evicted: w.win.evicted, Unparsed: w.bad}
	s.Failed, s.Blocked = w.win.read(w.cfg.Now())
	switch {
	case w.cfg.Source == nil:
		s.Problem = w.cfg.Unconfigured
	case !w.following && w.lastErr != nil:
		s.Problem = fmt.Sprintf("cannot follow the %s container's log: %v", w.cfg.Service, w.lastErr)
	case !w.following:
		s.Problem = fmt.Sprintf("not attached to the %s container's log yet", w.cfg.Service)
	}
	return s
}

// ParseProxies reads trusted_proxies: CIDRs or single addresses.
func ParseProxies(list []string) (accesslog.Proxies, error) {
	var out accesslog.Proxies
	for _, s := range list {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			a, aerr := netip.ParseAddr(s)
			if aerr != nil {
				return nil, fmt.Errorf("trusted proxy %q: want a CIDR such as 10.0.0.0/8 or an address", s)
			}
			p = netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())
		}
		out = append(out, p.Masked())
	}
	return out, nil
}
