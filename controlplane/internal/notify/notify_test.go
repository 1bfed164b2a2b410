package notify

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// A receiver that is down and comes back gets each notification once, in
// the order they happened.
func TestReceiverDownThenUpGetsEachOnceInOrder(t *testing.T) {
	h := newHook(t)
	h.setDown(true)
	st := openStore(t, dbPath(t))
	t.Cleanup(func() { _ = st.Close() })
	m := newCounts()
	n, err := New(testCfg(Config{WebhookURLs: []string{h.srv.URL}, Metrics: m}), st, nil)
	require.NoError(t, err)
	start(t, n)

	a, b := alert("redis_down", "n1"), alert("disk_full", "n2")
	resolvedAt := a.Since.Add(time.Minute)
	require.NoError(t, n.Notify(t.Context(), []Transition{fire(a), fire(b)}))
	require.NoError(t, n.Notify(t.Context(), []Transition{resolve(a, resolvedAt)}))
	require.Eventually(t, func() bool { return h.attempts() >= 5 }, 5*time.Second, 5*time.Millisecond, "the worker retries while the receiver is down")
	require.Empty(t, h.received())
	require.Equal(t, 3, m.queued(kindWebhook))

	h.setDown(false)
	require.Eventually(t, func() bool { return len(h.received()) == 3 }, 5*time.Second, 5*time.Millisecond)
	time.Sleep(100 * time.Millisecond) // a duplicate would arrive now
	got := h.received()
	require.Equal(t, []string{"firing redis_down/n1", "firing disk_full/n2", "resolved redis_down/n1"}, ids(got))
	require.Equal(t, resolvedAt, got[2].At)
	seen := map[string]bool{}
	for i, msg := range got {
		require.Equal(t, "1", msg.Version)
		require.Len(t, msg.ID, 32)
		require.False(t, seen[msg.ID], "ids are unique")
		seen[msg.ID] = true
		require.Equal(t, msg.ID, h.hdr[i].Get("Idempotency-Key"), "the header lets a receiver drop a duplicate")
	}
	require.Equal(t, 3, m.get("webhook/sent"))
	require.GreaterOrEqual(t, m.get("webhook/failed"), 5)
	require.Zero(t, m.queued(kindWebhook))
	n2, err := st.OutboxLen(n.receivers[0].key)
	require.NoError(t, err)
	require.Zero(t, n2, "delivered entries are deleted")
}

// A new Notifier on the same database, after the first died while its
// receiver was down, delivers what the first could not: once, in order.
func TestRestartMidRetryDeliversOnce(t *testing.T) {
	h := newHook(t)
	h.setDown(true)
	path := dbPath(t)
	cfg := testCfg(Config{WebhookURLs: []string{h.srv.URL}})

	st := openStore(t, path)
	n, err := New(cfg, st, nil)
	require.NoError(t, err)
	stop := start(t, n)
	a := alert("redis_down", "n1")
	require.NoError(t, n.Notify(t.Context(), []Transition{fire(a)}))
	require.Eventually(t, func() bool { return h.attempts() >= 3 }, 5*time.Second, 5*time.Millisecond)
	require.NoError(t, n.Notify(t.Context(), []Transition{resolve(a, a.Since.Add(time.Minute))}))
	stop()
	require.NoError(t, st.Close())
	require.Empty(t, h.received())

	h.setDown(false)
	st = openStore(t, path)
	t.Cleanup(func() { _ = st.Close() })
	log := &logBuf{}
	n, err = New(cfg, st, log.logger())
	require.NoError(t, err)
	start(t, n)
	require.Eventually(t, func() bool { return len(h.received()) == 2 }, 5*time.Second, 5*time.Millisecond)
	time.Sleep(100 * time.Millisecond)
	require.Equal(t, []string{"firing redis_down/n1", "resolved redis_down/n1"}, ids(h.received()))
	require.Contains(t, log.String(), `"waiting":2`, "the restart says what it picked up")
}

// A receiver that refuses a notification for good (400) does not block
// the ones behind it; the refused one is counted and logged.
func TestPermanentRefusalIsDroppedAndCounted(t *testing.T) {
	h := newHook(t)
	st := openStore(t, dbPath(t))
	t.Cleanup(func() { _ = st.Close() })
	m, log := newCounts(), &logBuf{}
	n, err := New(testCfg(Config{WebhookURLs: []string{h.srv.URL}, Metrics: m}), st, log.logger())
	require.NoError(t, err)

	a, b := alert("a", "n1"), alert("b", "n1")
	require.NoError(t, n.Notify(t.Context(), []Transition{fire(a), fire(b)}))
	items, err := st.Outbox(n.receivers[0].key, 0, 10)
	require.NoError(t, err)
	first, err := decodeRecord(items[0].Data)
	require.NoError(t, err)
	h.refuse[first.ID] = true

	start(t, n)
	require.Eventually(t, func() bool { return len(h.received()) == 1 }, 5*time.Second, 5*time.Millisecond)
	require.Equal(t, []string{"firing b/n1"}, ids(h.received()))
	require.Equal(t, 2, h.attempts(), "the refused one is not retried")
	require.Equal(t, 1, m.get("webhook/dropped"))
	require.Eventually(t, func() bool { return m.get("webhook/sent") == 1 }, 5*time.Second, 5*time.Millisecond, "counted once the answer is read")
	require.Contains(t, log.String(), "400 Bad Request: no such alert")
}

// Each receiver keeps at most MaxQueue entries: the oldest go, counted.
func TestOutboxCapDropsOldest(t *testing.T) {
	h := newHook(t)
	st := openStore(t, dbPath(t))
	t.Cleanup(func() { _ = st.Close() })
	m, log := newCounts(), &logBuf{}
	n, err := New(testCfg(Config{WebhookURLs: []string{h.srv.URL}, MaxQueue: 3, Metrics: m}), st, log.logger())
	require.NoError(t, err)
	var ts []Transition
	for _, name := range []string{"a", "b", "c", "d", "e"} {
		ts = append(ts, fire(alert(name, "n1")))
	}
	require.NoError(t, n.Notify(t.Context(), ts[:2]))
	require.NoError(t, n.Notify(t.Context(), ts[2:]))
	require.Equal(t, 2, m.get("webhook/overflow"))
	require.Equal(t, 3, m.queued(kindWebhook))
	require.Contains(t, log.String(), "the receiver's queue is full")

	start(t, n)
	require.Eventually(t, func() bool { return len(h.received()) == 3 }, 5*time.Second, 5*time.Millisecond)
	require.Equal(t, []string{"firing c/n1", "firing d/n1", "firing e/n1"}, ids(h.received()))
}

// The webhook token goes in the Authorization header and nowhere else: not
// in a body, not in the outbox, not in a log line. A URL path that holds a
// secret (as many webhook URLs do) is neither logged nor stored.
func TestNoSecretInPayloadOutboxOrLogs(t *testing.T) {
	const token = "fl-webhook-9c1e4b7d2a6f8e03b5c7d9e1f2a4b6c8"
	const pathSecret = "hooks/T0SECRETPATH7f3a"
	h := newHook(t)
	tokFile := filepath.Join(t.TempDir(), "token")
	require.NoError(t, os.WriteFile(tokFile, []byte(token+"\n"), 0o600))
	path := dbPath(t)
	st := openStore(t, path)
	t.Cleanup(func() { _ = st.Close() })
	log := &logBuf{}
	n, err := New(testCfg(Config{WebhookURLs: []string{h.srv.URL + "/" + pathSecret}, WebhookTokenFile: tokFile}), st, log.logger())
	require.NoError(t, err)

	a := alert("redis_down", "n1")
	h.setDown(true) // log lines about failures, with the receiver named
	start(t, n)
	require.NoError(t, n.Notify(t.Context(), []Transition{fire(a)}))
	require.Eventually(t, func() bool { return h.attempts() >= 2 }, 5*time.Second, 5*time.Millisecond)
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	items, err := st.Outbox(n.receivers[0].key, 0, 1)
	require.NoError(t, err)
	rec, err := decodeRecord(items[0].Data)
	require.NoError(t, err)
	require.Contains(t, string(raw), rec.ID, "the outbox is in the file read")
	require.NotContains(t, string(raw), token)
	require.NotContains(t, string(raw), "T0SECRETPATH")

	h.setDown(false)
	require.Eventually(t, func() bool { return len(h.received()) == 1 }, 5*time.Second, 5*time.Millisecond)
	h.mu.Lock()
	body, hdr := string(h.raw[0]), h.hdr[0]
	h.mu.Unlock()
	require.Equal(t, "Bearer "+token, hdr.Get("Authorization"), "the token is sent where it belongs")
	require.Contains(t, body, `"fingerprint":"redis_down/n1"`)
	require.NotContains(t, body, token)
	for k, vs := range hdr {
		if k != "Authorization" {
			require.NotContains(t, strings.Join(vs, " "), token, "header %s", k)
		}
	}
	require.Contains(t, log.String(), "webhook 1 (127.0.0.1:", "logs name the receiver")
	require.NotContains(t, log.String(), token)
	require.NotContains(t, log.String(), "T0SECRETPATH")

	// A token file others can read is refused at the next post, and the
	// notification waits for the file to be mended.
	require.NoError(t, os.Chmod(tokFile, 0o644))
	require.NoError(t, n.Notify(t.Context(), []Transition{resolve(a, a.Since.Add(time.Minute))}))
	require.Eventually(t, func() bool { return strings.Contains(log.String(), "chmod 600") }, 5*time.Second, 5*time.Millisecond)
	require.Len(t, h.received(), 1)
	require.NoError(t, os.Chmod(tokFile, 0o600))
	require.Eventually(t, func() bool { return len(h.received()) == 2 }, 5*time.Second, 5*time.Millisecond)
}

// A receiver removed from the config (or whose URL changed) leaves an
// outbox nothing would send: the next Run deletes it and says so.
func TestUnconfiguredReceiverOutboxDropped(t *testing.T) {
	old, now := newHook(t), newHook(t)
	old.setDown(true)
	path := dbPath(t)
	st := openStore(t, path)
	t.Cleanup(func() { _ = st.Close() })
	n, err := New(testCfg(Config{WebhookURLs: []string{old.srv.URL}}), st, nil)
	require.NoError(t, err)
	require.NoError(t, n.Notify(t.Context(), []Transition{fire(alert("a", "n1"))}))
	oldKey := n.receivers[0].key

	m, log := newCounts(), &logBuf{}
	n, err = New(testCfg(Config{WebhookURLs: []string{now.srv.URL}, Metrics: m}), st, log.logger())
	require.NoError(t, err)
	start(t, n)
	require.NoError(t, n.Notify(t.Context(), []Transition{fire(alert("b", "n1"))}))
	require.Eventually(t, func() bool { return len(now.received()) == 1 }, 5*time.Second, 5*time.Millisecond)
	require.Equal(t, []string{"firing b/n1"}, ids(now.received()))
	left, err := st.OutboxLen(oldKey)
	require.NoError(t, err)
	require.Zero(t, left)
	require.Equal(t, 1, m.get("webhook/dropped"))
	require.Contains(t, log.String(), "no longer configured")
	require.Zero(t, old.attempts())
}
