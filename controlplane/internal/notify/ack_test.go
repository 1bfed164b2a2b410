package notify

import (
	"encoding/pem"
	"io"
	stdlog "log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/forlock/fleet/controlplane/internal/store"
)

// noAckStore refuses to delete delivered entries, as a full disk does, or
// as a control plane that dies between the 2xx and the deletion leaves
// them.
type noAckStore struct {
	*store.Store
	refuse atomic.Bool
}

func (s *noAckStore) AckOutbox(receiver string, seq uint64) error {
	if s.refuse.Load() {
		return store.ErrDiskFull
	}
	return s.Store.AckOutbox(receiver, seq)
}

// A delivered notification whose deletion did not happen is not posted
// again by the same process; after a restart it is, once, with the same
// id, so the receiver can drop it by the Idempotency-Key.
func TestUndeletedIsRepostedOnceWithTheSameID(t *testing.T) {
	h := newHook(t)
	path := dbPath(t)
	cfg := testCfg(Config{WebhookURLs: []string{h.srv.URL}})
	st := &noAckStore{Store: openStore(t, path)}
	st.refuse.Store(true)
	n, err := New(cfg, st, nil)
	require.NoError(t, err)
	stop := start(t, n)
	a := alert("redis_down", "n1")
	require.NoError(t, n.Notify(t.Context(), []Transition{fire(a)}))
	require.Eventually(t, func() bool { return len(h.received()) == 1 }, 5*time.Second, 5*time.Millisecond)
	require.NoError(t, n.Notify(t.Context(), []Transition{fire(alert("b", "n1"))}))
	require.Eventually(t, func() bool { return len(h.received()) == 2 }, 5*time.Second, 5*time.Millisecond)
	time.Sleep(100 * time.Millisecond)
	require.Len(t, h.received(), 2, "not posted again by the process that delivered it")
	stop()
	require.NoError(t, st.Close())

	st2 := openStore(t, path)
	t.Cleanup(func() { _ = st2.Close() })
	n, err = New(cfg, st2, nil)
	require.NoError(t, err)
	start(t, n)
	require.Eventually(t, func() bool { return len(h.received()) == 4 }, 5*time.Second, 5*time.Millisecond)
	time.Sleep(100 * time.Millisecond)
	got := h.received()
	require.Len(t, got, 4, "each posted again once")
	require.Equal(t, got[0].ID, got[2].ID, "the repeat carries the same id")
	require.Equal(t, got[1].ID, got[3].ID)
	h.mu.Lock()
	require.Equal(t, h.hdr[0].Get("Idempotency-Key"), h.hdr[2].Get("Idempotency-Key"))
	h.mu.Unlock()
	left, err := st2.OutboxLen(n.receivers[0].key)
	require.NoError(t, err)
	require.Zero(t, left)
}

// Every Alertmanager URL gets every notification (an Alertmanager
// cluster de-duplicates), and one being down does not hold the other back.
func TestEachAlertmanagerGetsEverything(t *testing.T) {
	srv1, posts1 := newFakeAM(t)
	srv2, posts2 := newFakeAM(t)
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusBadGateway) }))
	t.Cleanup(down.Close)
	st := openStore(t, dbPath(t))
	t.Cleanup(func() { _ = st.Close() })
	n, err := New(testCfg(Config{AlertmanagerURLs: []string{srv1.URL, down.URL, srv2.URL}}), st, nil)
	require.NoError(t, err)
	start(t, n)
	a := alert("redis_down", "n1")
	require.NoError(t, n.Notify(t.Context(), []Transition{fire(a), resolve(a, a.Since.Add(time.Minute))}))
	for _, posts := range []func() []amPost{posts1, posts2} {
		require.Eventually(t, func() bool { return len(posts()) == 2 }, 5*time.Second, 5*time.Millisecond)
		ps := posts()
		require.True(t, ps[0].alerts[0].EndsAt.After(time.Now()), "firing first")
		require.Equal(t, a.Since.Add(time.Minute), ps[1].alerts[0].EndsAt, "then resolved")
	}
}

// HTTPS receivers signed by a private CA are verified with alerting.ca_file;
// without it the certificate is refused and the notification waits.
func TestWebhookHTTPSWithCAFile(t *testing.T) {
	var got atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { got.Add(1) }))
	srv.Config.ErrorLog = stdlog.New(io.Discard, "", 0) // the refused handshake is expected
	srv.StartTLS()
	t.Cleanup(srv.Close)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	require.NoError(t, os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600))

	for _, tc := range []struct {
		name   string
		caFile string
	}{{"system roots refuse it", ""}, {"ca file verifies it", ca}} {
		t.Run(tc.name, func(t *testing.T) {
			got.Store(0)
			st := openStore(t, dbPath(t))
			t.Cleanup(func() { _ = st.Close() })
			log := &logBuf{}
			n, err := New(testCfg(Config{WebhookURLs: []string{srv.URL}, CAFile: tc.caFile}), st, log.logger())
			require.NoError(t, err)
			start(t, n)
			require.NoError(t, n.Notify(t.Context(), []Transition{fire(alert("a", "n1"))}))
			if tc.caFile == "" {
				require.Eventually(t, func() bool { return strings.Contains(log.String(), "certificate") }, 5*time.Second, 5*time.Millisecond)
				require.Zero(t, got.Load())
				return
			}
			require.Eventually(t, func() bool { return got.Load() == 1 }, 5*time.Second, 5*time.Millisecond)
		})
	}
}
