package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/forlock/fleet/controlplane/internal/store"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// hook is a webhook receiver that records what it took; down makes it
// answer 503, refuse (an id) 400.
type hook struct {
	srv *httptest.Server
	mu  sync.Mutex
	got []webhookMessage
	raw [][]byte
	hdr []http.Header
	// down answers 503 while true; refuse answers 400 to these ids.
	down   bool
	refuse map[string]bool
	posts  int
}

func newHook(t *testing.T) *hook {
	t.Helper()
	h := &hook{refuse: map[string]bool{}}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		defer h.mu.Unlock()
		h.posts++
		var m webhookMessage
		if err := json.Unmarshal(body, &m); err != nil {
			w.WriteHeader(http.StatusUnprocessableEntity)
			return
		}
		switch {
		case h.down:
			w.WriteHeader(http.StatusServiceUnavailable)
		case h.refuse[m.ID]:
			http.Error(w, "no such alert", http.StatusBadRequest)
		default:
			h.got, h.raw, h.hdr = append(h.got, m), append(h.raw, body), append(h.hdr, r.Header.Clone())
		}
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hook) setDown(down bool) {
	h.mu.Lock()
	h.down = down
	h.mu.Unlock()
}

func (h *hook) received() []webhookMessage {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]webhookMessage(nil), h.got...)
}

func (h *hook) attempts() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.posts
}

// counts is a Metrics that remembers.
type counts struct {
	mu    sync.Mutex
	n     map[string]int
	queue map[string]int
}

func newCounts() *counts { return &counts{n: map[string]int{}, queue: map[string]int{}} }

func (c *counts) Notifications(kind, outcome string, n int) {
	c.mu.Lock()
	c.n[kind+"/"+outcome] += n
	c.mu.Unlock()
}

func (c *counts) NotificationQueue(kind string, n int) {
	c.mu.Lock()
	c.queue[kind] = n
	c.mu.Unlock()
}

func (c *counts) get(key string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[key]
}

func (c *counts) queued(kind string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.queue[kind]
}

// testCfg is cfg with short backoffs.
func testCfg(cfg Config) Config {
	cfg.minBackoff, cfg.maxBackoff = 5*time.Millisecond, 40*time.Millisecond
	return cfg
}

func openStore(t *testing.T, path string) *store.Store {
	t.Helper()
	st, err := store.Open(path)
	require.NoError(t, err)
	return st
}

func dbPath(t *testing.T) string {
	t.Helper()
	return filepath.Join(t.TempDir(), "fleet.db")
}

// logBuf is a logger writing to a buffer tests can search.
type logBuf struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (l *logBuf) logger() *slog.Logger { return slog.New(slog.NewJSONHandler(l, nil)) }

// start runs n until the test (or stop) ends it.
func start(t *testing.T, n *Notifier) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			require.NoError(t, <-done)
		})
	}
	t.Cleanup(stop)
	return stop
}

func alert(name, node string) Alert {
	return Alert{Name: name, Severity: "critical", Node: node, Summary: name + " on " + node,
		RunbookURL: "https://docs.example/operations.md#" + name, Fingerprint: name + "/" + node,
		Labels: map[string]string{"check": name}, Since: time.Date(2026, 12, 4, 3, 0, 0, 0, time.UTC)}
}

func fire(a Alert) Transition { return Transition{Alert: a, At: a.Since} }

func resolve(a Alert, at time.Time) Transition { return Transition{Alert: a, Resolved: true, At: at} }

// ids is the (status, fingerprint) sequence a receiver got.
func ids(ms []webhookMessage) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Status+" "+m.Alert.Fingerprint)
	}
	return out
}
