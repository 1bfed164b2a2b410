package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/forlock/fleet/test/testenv"
)

// amNotice is one alert of an Alertmanager webhook notification.
type amNotice struct {
	Status string            `json:"status"`
	Labels map[string]string `json:"labels"`
	At     time.Time         `json:"-"`
}

// direct is one notification of the control plane's own webhook.
type direct struct {
	ID     string `json:"id"`
	Status string `json:"status"`
	Alert  struct {
		Name        string            `json:"name"`
		Node        string            `json:"node"`
		Labels      map[string]string `json:"labels"`
		Fingerprint string            `json:"fingerprint"`
		Since       time.Time         `json:"since"`
	} `json:"alert"`
}

// receivers collects what Alertmanager's webhook and the control plane's
// own webhook get, with every body kept for the secret check.
type receivers struct {
	mu     sync.Mutex
	am     []amNotice
	direct []direct
	bodies []string
	auth   []string
	down   bool // the direct webhook answers 503
}

func (r *receivers) handler(t *testing.T) http.Handler {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("POST /am", func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		var n struct {
			Alerts []amNotice `json:"alerts"`
		}
		if err := json.Unmarshal(b, &n); err != nil {
			t.Errorf("alertmanager sent %s: %v", b, err)
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		r.bodies = append(r.bodies, string(b))
		for _, a := range n.Alerts {
			a.At = time.Now()
			r.am = append(r.am, a)
		}
	})
	mux.HandleFunc("POST /direct", func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.down {
			http.Error(w, "down for the test", http.StatusServiceUnavailable)
			return
		}
		var d direct
		if err := json.Unmarshal(b, &d); err != nil {
			t.Errorf("the control plane sent %s: %v", b, err)
		}
		r.bodies = append(r.bodies, string(b))
		r.auth = append(r.auth, req.Header.Get("Authorization"))
		r.direct = append(r.direct, d)
	})
	return mux
}

func (r *receivers) snapshot() []direct {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]direct(nil), r.direct...)
}

func (r *receivers) setDown(down bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.down = down
}

// amFirst is when Alertmanager first notified status for an alert whose
// labels include want; zero if never.
func (r *receivers) amFirst(status string, want map[string]string) time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, a := range r.am {
		if a.Status == status && hasLabels(a.Labels, want) {
			return a.At
		}
	}
	return time.Time{}
}

func hasLabels(got, want map[string]string) bool {
	for k, v := range want {
		if got[k] != v {
			return false
		}
	}
	return true
}

// TestAlertsEndToEnd runs the built-in alerting against a real test node
// and delivers to Debian's Alertmanager, whose webhook receiver is this
// test, and to a webhook of the test's own:
//   - Redis paused: ForlockCheckCritical{check=redis} reaches the receiver
//     within two heartbeat intervals, and resolves after Redis returns;
//   - 30 wrong logins from a client container: ForlockFailedLogins names
//     its address;
//   - PostgreSQL stopped: the scheduled backup fails and ForlockBackupFailed
//     fires;
//   - forlockctl alerts, status and /metrics show the same firing set;
//   - the control plane restarts while alerts fire: no notification twice;
//     the webhook was down for a while and got each notification once;
//   - no payload carries a secret.
func TestAlertsEndToEnd(t *testing.T) {
	requireTestNodeImages(t)
	const heartbeat = 5 * time.Second
	rec := &receivers{}
	srv := httptest.NewServer(rec.handler(t))
	t.Cleanup(srv.Close)
	am := testenv.StartAlertmanager(t, srv.URL+"/am")

	dir := t.TempDir()
	const webhookSecret = "fwh_e2e-webhook-token-7f3a9c"
	tokenFile := filepath.Join(dir, "webhook-token")
	require.NoError(t, os.WriteFile(tokenFile, []byte(webhookSecret+"\n"), 0o600))
	metricsAddr := freePort(t)
	cfg := filepath.Join(dir, "controlplane.yaml")
	require.NoError(t, os.WriteFile(cfg, fmt.Appendf(nil, `version: 1
metrics_listen: %s
alerting:
  evaluation_interval: 1s
  alertmanager_urls: [%s]
  webhook_urls: [%s]
  webhook_token_file: %s
  resend_interval: 5s
backup_schedules:
  - name: e2e-alerts
    cron: "@every 20s"
    only: [postgres]
    keep: 1h
`, metricsAddr, am, srv.URL+"/direct", tokenFile), 0o600))
	c := startCluster(t, "--config", cfg, "--heartbeat-interval", heartbeat.String())
	backups := filepath.Join(dir, "backups")
	n := c.upTestNode("fl-alerts", "--check-timeout", "2s", "--backup-dirs", backups, "--compose-dir", repoPath("deploy", "testnode"))

	// The webhook is down while Redis fails and returns: it must get both
	// notifications afterwards, once each, in order.
	rec.setDown(true)
	c.waitCheck(n.name, "redis", "CHECK_STATUS_OK")
	paused := time.Now()
	docker(t, "pause", n.name+"-redis")
	redis := map[string]string{"alertname": "ForlockCheckCritical", "node": n.name, "check": "redis"}
	require.Eventually(t, func() bool { return !rec.amFirst("firing", redis).IsZero() }, 60*time.Second, 100*time.Millisecond,
		"ForlockCheckCritical{check=redis} never reached Alertmanager's receiver")
	took := rec.amFirst("firing", redis).Sub(paused)
	t.Logf("Redis paused -> Alertmanager's webhook: %s (heartbeat %s)", took.Round(time.Millisecond), heartbeat)
	require.LessOrEqual(t, took, 2*heartbeat, "the alert must arrive within two heartbeat intervals")
	docker(t, "unpause", n.name+"-redis")
	require.Eventually(t, func() bool { return !rec.amFirst("resolved", redis).IsZero() }, 60*time.Second, 100*time.Millisecond,
		"the Redis alert never resolved at Alertmanager's receiver")
	rec.setDown(false)
	require.Eventually(t, func() bool {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		var got []string
		for _, d := range rec.direct {
			if d.Alert.Name == "ForlockCheckCritical" && d.Alert.Labels["check"] == "redis" {
				got = append(got, d.Status)
			}
		}
		return strings.Join(got, ",") == "firing,resolved"
	}, 60*time.Second, 200*time.Millisecond, "the webhook that was down gets the firing and the resolved once, in order")

	// 30 wrong logins in a minute from one client container.
	client := testenv.StartLoginClient(t, n.name, n.name+"_default", 1)
	codes := client.WrongLogins(t, 30)
	require.Len(t, codes, 30)
	for _, code := range codes {
		require.Equal(t, "401", code, "the API image has no login endpoint: rebuild the test images with deploy/testnode/build-images.sh")
	}
	logins := map[string]string{"alertname": "ForlockFailedLogins", "node": n.name, "address": client.Addr}
	require.Eventually(t, func() bool { return !rec.amFirst("firing", logins).IsZero() }, 60*time.Second, 200*time.Millisecond,
		"ForlockFailedLogins naming %s never reached Alertmanager's receiver", client.Addr)

	// PostgreSQL stops: the next scheduled backup fails.
	docker(t, "stop", n.name+"-postgres")
	backupFailed := map[string]string{"alertname": "ForlockBackupFailed", "node": n.name}
	require.Eventually(t, func() bool { return !rec.amFirst("firing", backupFailed).IsZero() }, 90*time.Second, 200*time.Millisecond,
		"a failed scheduled backup never alerted")

	// forlockctl alerts, status and the metrics agree on the firing set.
	metricsURL := "http://" + metricsAddr + "/metrics"
	require.Eventually(t, func() bool {
		var list struct {
			Alerts []struct {
				Name     string `json:"name"`
				Severity string `json:"severity"`
			} `json:"alerts"`
		}
		require.NoError(t, json.Unmarshal([]byte(c.ctl("alerts", "-o", "json")), &list))
		counts := map[string]float64{}
		for _, a := range list.Alerts {
			counts[a.Name+"/"+a.Severity]++
		}
		s := scrapeMetrics(t, metricsURL)
		fromMetrics := map[string]float64{}
		for _, fam := range s.families {
			if fam.GetName() != "forlock_alerts_firing" {
				continue
			}
			for _, m := range fam.GetMetric() {
				lb := map[string]string{}
				for _, l := range m.GetLabel() {
					lb[l.GetName()] = l.GetValue()
				}
				if v := m.GetGauge().GetValue(); v > 0 {
					fromMetrics[lb["alertname"]+"/"+lb["severity"]] = v
				}
			}
		}
		status := c.ctl("status")
		return fmt.Sprint(counts) == fmt.Sprint(fromMetrics) && counts["ForlockBackupFailed/critical"] == 1 &&
			strings.Contains(status, fmt.Sprintf("%d alerts firing", len(list.Alerts))) && strings.Contains(status, "ForlockBackupFailed")
	}, 30*time.Second, time.Second, "forlockctl alerts, status and forlock_alerts_firing disagree")

	// A restart while alerts fire sends nothing twice.
	before := len(rec.snapshot())
	c.cp.kill(syscall.SIGTERM)
	c.startControlPlane()
	time.Sleep(4 * heartbeat) // past the warm-up, several evaluations
	after := rec.snapshot()
	ids, fired := map[string]int{}, map[string]int{}
	for _, d := range after {
		ids[d.ID]++
		require.Equal(t, 1, ids[d.ID], "notification %s delivered twice", d.ID)
		if d.Status == "firing" { // one firing per alert and start (an alert may fire again later)
			key := d.Alert.Fingerprint + d.Alert.Since.String()
			fired[key]++
			require.Equal(t, 1, fired[key], "%s %v notified firing twice", d.Alert.Name, d.Alert.Labels)
		}
	}
	t.Logf("webhook notifications: %d before the restart, %d after", before, len(after))

	// No payload carries a secret; the webhook token only in its header.
	admin, _ := c.adminTLS()
	rec.mu.Lock()
	defer rec.mu.Unlock()
	require.NotEmpty(t, rec.bodies)
	for _, b := range rec.bodies {
		for _, secret := range []string{webhookSecret, admin, "forlock:forlock-test@", "fjt_"} {
			require.NotContains(t, b, secret, "a notification carries a secret")
		}
	}
	for _, a := range rec.auth {
		require.Equal(t, "Bearer "+webhookSecret, a)
	}
}
