package notify

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/forlock/fleet/controlplane/internal/store"
)

// fullStore refuses outbox writes as a full data disk does while full is
// set.
type fullStore struct {
	*store.Store
	full atomic.Bool
}

func (s *fullStore) AppendOutbox(entries []store.OutboxEntry, keep int) (map[string]int, error) {
	if s.full.Load() {
		return nil, store.ErrDiskFull
	}
	return s.Store.AppendOutbox(entries, keep)
}

// A full data disk refuses a notification and stores nothing: the caller
// (the alerting evaluator, which keeps its transitions in its own bucket)
// passes it again; it is then delivered once, in order.
func TestFullDiskRefusesNotifications(t *testing.T) {
	h := newHook(t)
	st := &fullStore{Store: openStore(t, dbPath(t))}
	t.Cleanup(func() { _ = st.Close() })
	log := &logBuf{}
	n, err := New(testCfg(Config{WebhookURLs: []string{h.srv.URL}, ResendInterval: time.Second}), st, log.logger())
	require.NoError(t, err)
	start(t, n)

	a, b := alert("a", "n1"), alert("b", "n1")
	st.full.Store(true)
	err = n.Notify(t.Context(), []Transition{fire(a)})
	require.ErrorIs(t, err, store.ErrDiskFull)
	require.Contains(t, log.String(), "alert notifications not stored")
	time.Sleep(1500 * time.Millisecond) // past a resend interval: nothing was kept to send
	require.Empty(t, h.received())
	st.full.Store(false)
	require.NoError(t, n.Notify(t.Context(), []Transition{fire(a), fire(b)}))
	require.Eventually(t, func() bool { return len(h.received()) == 2 }, 5*time.Second, 5*time.Millisecond)
	require.Equal(t, []string{"firing a/n1", "firing b/n1"}, ids(h.received()), "each once, in order")
}
