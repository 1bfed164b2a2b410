package notify

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/forlock/fleet/test/testenv"
)

// amPost is one POST an Alertmanager stand-in took.
type amPost struct {
	at     time.Time
	alerts []amAlert
}

func newFakeAM(t *testing.T) (*httptest.Server, func() []amPost) {
	t.Helper()
	var mu sync.Mutex
	var posts []amPost
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v2/alerts" || r.Method != http.MethodPost {
			http.NotFound(w, r)
			return
		}
		var as []amAlert
		if err := json.NewDecoder(r.Body).Decode(&as); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		posts = append(posts, amPost{at: time.Now(), alerts: as})
		mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	return srv, func() []amPost {
		mu.Lock()
		defer mu.Unlock()
		return append([]amPost(nil), posts...)
	}
}

// Firing alerts are posted to Alertmanager again every resend interval
// with endsAt four intervals ahead; a resolved one is posted once with
// endsAt at its resolve time and is not posted again.
func TestAlertmanagerResendCadence(t *testing.T) {
	srv, posts := newFakeAM(t)
	st := openStore(t, dbPath(t))
	t.Cleanup(func() { _ = st.Close() })
	m := newCounts()
	n, err := New(testCfg(Config{AlertmanagerURLs: []string{srv.URL + "/"}, ResendInterval: time.Second, Metrics: m}), st, nil)
	require.NoError(t, err)
	a := alert("redis_down", "n1")
	n.Firing([]Alert{a})
	require.NoError(t, n.Notify(t.Context(), []Transition{fire(a)}))
	start(t, n)

	require.Eventually(t, func() bool { return len(posts()) >= 4 }, 10*time.Second, 10*time.Millisecond)
	ps := posts()
	require.Equal(t, "redis_down", ps[0].alerts[0].Labels["alertname"], "the transition is posted at once")
	for i, p := range ps {
		require.Len(t, p.alerts, 1)
		require.Equal(t, a.Since, p.alerts[0].StartsAt)
		require.WithinDuration(t, p.at.Add(4*time.Second), p.alerts[0].EndsAt, time.Second, "post %d stays active for four intervals", i)
	}
	for i := 2; i < len(ps); i++ {
		gap := ps[i].at.Sub(ps[i-1].at)
		require.GreaterOrEqual(t, gap, 900*time.Millisecond, "resends %d and %d are an interval apart", i-1, i)
	}
	require.GreaterOrEqual(t, m.get("alertmanager/resent"), 3)

	resolvedAt := time.Now().UTC().Truncate(time.Second)
	before := len(posts()) // a resend may land in between: it still holds the alert, as it should
	require.NoError(t, n.Notify(t.Context(), []Transition{resolve(a, resolvedAt)}))
	n.Firing(nil)
	require.Eventually(t, func() bool { return len(posts()) > before }, 5*time.Second, 10*time.Millisecond)
	time.Sleep(2500 * time.Millisecond) // two resend intervals
	after := posts()[before:]
	for len(after) > 1 && !after[0].alerts[0].EndsAt.Equal(resolvedAt) {
		after = after[1:] // the resend that raced the Notify
	}
	require.Len(t, after, 1, "nothing is posted again once resolved")
	require.Equal(t, resolvedAt, after[0].alerts[0].EndsAt)
}

func TestToAMLabels(t *testing.T) {
	a := alert("disk_full", "n1")
	a.Labels = map[string]string{"alertname": "spoof", "mount.point": "/data", "9x": "y", "empty": ""}
	a.RunbookURL = ""
	got := toAM(a, a.Since.Add(time.Hour))
	require.Equal(t, map[string]string{"alertname": "disk_full", "severity": "critical", "node": "n1", "mount_point": "/data", "_x": "y"}, got.Labels,
		"ours win, names are mended, empty values left out")
	require.Equal(t, map[string]string{"summary": "disk_full on n1"}, got.Annotations)
}

// gettableAlert is the part of Alertmanager's GET /api/v2/alerts read back.
type gettableAlert struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	StartsAt    time.Time         `json:"startsAt"`
	EndsAt      time.Time         `json:"endsAt"`
	Status      struct {
		State string `json:"state"`
	} `json:"status"`
}

func getAlerts(t *testing.T, base string) []gettableAlert {
	t.Helper()
	resp, err := http.Get(base + "/api/v2/alerts")
	require.NoError(t, err)
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	var as []gettableAlert
	require.NoError(t, json.Unmarshal(body, &as), string(body))
	return as
}

// A real Alertmanager takes what the notifier posts (the schema is
// right) and shows it active, then forgets it once resolved.
func TestRealAlertmanager(t *testing.T) {
	base := testenv.StartAlertmanager(t, "")
	st := openStore(t, dbPath(t))
	t.Cleanup(func() { _ = st.Close() })
	m := newCounts()
	n, err := New(testCfg(Config{AlertmanagerURLs: []string{base}, Metrics: m}), st, nil)
	require.NoError(t, err)
	start(t, n)

	a := alert("redis_down", "n1")
	a.Since = time.Now().UTC().Add(-time.Minute).Truncate(time.Second)
	require.NoError(t, n.Notify(t.Context(), []Transition{fire(a)}))
	var got []gettableAlert
	require.Eventually(t, func() bool { got = getAlerts(t, base); return len(got) == 1 }, 10*time.Second, 50*time.Millisecond)
	require.Equal(t, map[string]string{"alertname": "redis_down", "severity": "critical", "node": "n1", "check": "redis_down"}, got[0].Labels)
	require.Equal(t, map[string]string{"summary": "redis_down on n1", "runbook_url": "https://docs.example/operations.md#redis_down"}, got[0].Annotations)
	require.Equal(t, a.Since, got[0].StartsAt.UTC())
	require.Equal(t, "active", got[0].Status.State)
	require.WithinDuration(t, time.Now().Add(4*DefaultResendInterval), got[0].EndsAt, 30*time.Second)
	require.Eventually(t, func() bool { return m.get("alertmanager/sent") == 1 }, 5*time.Second, 5*time.Millisecond)

	require.NoError(t, n.Notify(t.Context(), []Transition{resolve(a, time.Now().UTC())}))
	require.Eventually(t, func() bool { return len(getAlerts(t, base)) == 0 }, 10*time.Second, 50*time.Millisecond,
		"the resolved alert is still listed")
	require.Eventually(t, func() bool { return m.get("alertmanager/sent") == 2 }, 5*time.Second, 5*time.Millisecond, "counted once the answer is read")
}
