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

// Notifications that a full disk keeps out of the outbox are held and
// stored once there is room: by the next Notify, or by Run's timer.
func TestFullDiskHoldsNotifications(t *testing.T) {
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
	require.Contains(t, log.String(), "alert notifications held in memory")
	st.full.Store(false)
	require.NoError(t, n.Notify(t.Context(), []Transition{fire(b)}))
	require.Eventually(t, func() bool { return len(h.received()) == 2 }, 5*time.Second, 5*time.Millisecond)
	require.Equal(t, []string{"firing a/n1", "firing b/n1"}, ids(h.received()), "the held one first")

	st.full.Store(true)
	require.ErrorIs(t, n.Notify(t.Context(), []Transition{resolve(a, a.Since.Add(time.Minute))}), store.ErrDiskFull)
	st.full.Store(false)
	require.Eventually(t, func() bool { return len(h.received()) == 3 }, 5*time.Second, 5*time.Millisecond, "Run stores it within a resend interval")
	require.Equal(t, "resolved a/n1", ids(h.received())[2])
}
