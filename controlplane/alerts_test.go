package controlplane

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"
	"google.golang.org/grpc/metadata"

	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// healthBeat sends a heartbeat carrying one check.
func healthBeat(t *testing.T, s stream, seq uint64, c *forlockv1.CheckResult) {
	t.Helper()
	require.NoError(t, s.Send(&forlockv1.ConnectRequest{Msg: &forlockv1.ConnectRequest_Heartbeat{Heartbeat: &forlockv1.Heartbeat{
		Seq: seq, Facts: &forlockv1.HostFacts{Hostname: "h"}, Health: &forlockv1.HealthReport{Checks: []*forlockv1.CheckResult{c}}}}}))
}

func (e *env) alerts(nodes ...string) []*forlockv1.Alert {
	e.t.Helper()
	resp, err := forlockv1.NewAlertServiceClient(e.dial(nil)).ListAlerts(e.admin(), &forlockv1.ListAlertsRequest{Nodes: nodes})
	require.NoError(e.t, err)
	return resp.GetAlerts()
}

// A CRITICAL check reported in a heartbeat is listed by ListAlerts within
// a few heartbeat intervals, without the check's message; it resolves when
// the check is OK again, and a firing alert keeps its since across a
// restart of the control plane.
func TestListAlertsThroughTheControlPlane(t *testing.T) {
	const interval = 200 * time.Millisecond
	dir := t.TempDir() + "/cp"
	e := startEnvIn(t, dir, nil)
	id := e.mustEnroll(e.token(1, time.Hour, nil), "web-1")
	s, _ := e.connect(id)
	redis := &forlockv1.CheckResult{Name: "redis", Status: forlockv1.CheckStatus_CHECK_STATUS_CRITICAL, Message: "auth failed for requirepass s3cr3t-redis"}
	sent := time.Now()
	healthBeat(t, s, 1, redis)
	require.Eventually(t, func() bool { return len(e.alerts()) == 1 }, 20*interval, 20*time.Millisecond)
	t.Logf("alert listed %s after the heartbeat (heartbeat interval %s)", time.Since(sent).Round(time.Millisecond), interval)
	a := e.alerts("web-1")[0]
	require.Equal(t, "ForlockCheckCritical", a.GetName())
	require.Equal(t, "critical", a.GetSeverity())
	require.Equal(t, "web-1", a.GetNode())
	require.Equal(t, map[string]string{"check": "redis"}, a.GetLabels())
	require.Equal(t, "check redis of node web-1 is CRITICAL", a.GetSummary())
	require.NotContains(t, a.String(), "s3cr3t")
	require.Equal(t, "https://github.com/forlock/fleet/blob/main/docs/operations.md#alert-forlockcheckcritical", a.GetRunbookUrl())
	require.Len(t, a.GetFingerprint(), 32)
	require.Empty(t, e.alerts("web-2"), "the node filter applies")

	// Restart: the alert is there at once, with the same since.
	e.stop()
	e = startEnvIn(t, dir, nil)
	got := e.alerts()
	require.Len(t, got, 1)
	require.Equal(t, a.GetSince().AsTime(), got[0].GetSince().AsTime())
	require.Equal(t, a.GetFingerprint(), got[0].GetFingerprint())

	s, _ = e.connect(id)
	redis.Status = forlockv1.CheckStatus_CHECK_STATUS_OK
	healthBeat(t, s, 1, redis)
	// Resolved after the warm-up (two heartbeat intervals after start).
	require.Eventually(t, func() bool { return len(e.alerts()) == 0 }, 20*interval, 20*time.Millisecond)
}

func TestAlertingSettings(t *testing.T) {
	none := func(string) (string, bool) { return "", false }
	file := filepath.Join(t.TempDir(), "cp.yaml")
	write := func(s string) {
		require.NoError(t, os.WriteFile(file, []byte("version: 1\n"+s), 0o600))
	}
	write(`alerting:
  evaluation_interval: 5s
  thresholds: {disk_free_ratio: 0.2, backup_max_age: 48h}
  overrides:
    - selector: env=prod
      thresholds: {cpu_used_ratio: 0.7}
`)
	cfg, err := parseArgs([]string{"--config", file}, none, &bytes.Buffer{})
	require.NoError(t, err)
	a := cfg.Alerting
	require.Equal(t, 5*time.Second, a.EvaluationInterval)
	require.Equal(t, time.Hour, a.JobAlertDuration)
	require.InDelta(t, 0.2, a.Thresholds.DiskFreeRatio, 1e-9)
	require.Equal(t, 48*time.Hour, a.Thresholds.BackupMaxAge)
	require.InDelta(t, 0.9, a.Thresholds.MemoryUsedRatio, 1e-9, "unset keeps the guide's value")
	require.Len(t, a.Overrides, 1)
	require.Equal(t, "env=prod", a.Overrides[0].Selector.String())
	require.InDelta(t, 0.7, a.Overrides[0].Thresholds.CPUUsedRatio, 1e-9)
	require.InDelta(t, 0.2, a.Overrides[0].Thresholds.DiskFreeRatio, 1e-9, "an override builds on alerting.thresholds")

	for in, msg := range map[string]string{
		"alerting:\n  thresholds: {disk_free_ratio: 10}\n":                              "alerting.thresholds: disk_free_ratio 10: give a ratio from 0 to 1",
		"alerting:\n  thresholds: {disk_free: 0.1}\n":                                   "disk_free",
		"alerting:\n  overrides: [{selector: 'env=prod,,', thresholds: {}}]\n":          "alerting.overrides[0]",
		"alerting:\n  overrides: [{thresholds: {cpu_used_ratio: 0.5}}]\n":               "alerting.overrides[0]: give a selector",
		"alerting:\n  evaluation_interval: 2h\n":                                        "alerting evaluation interval 2h0m0s: give 100ms to 1h",
		"alerting:\n  overrides: [{selector: a=b, thresholds: {cpu_used_ratio: -1}}]\n": "alerting.overrides[0] (a=b): cpu_used_ratio -1",
	} {
		write(in)
		_, err := parseArgs([]string{"--config", file}, none, &bytes.Buffer{})
		require.ErrorContains(t, err, msg, in)
	}
}

// A viewer sees every alert; a scoped one only its nodes'.
func TestListAlertsScoped(t *testing.T) {
	e := startEnv(t, nil)
	crit := &forlockv1.CheckResult{Name: "redis", Status: forlockv1.CheckStatus_CHECK_STATUS_CRITICAL}
	for i, n := range []struct{ name, env string }{{"web-1", "prod"}, {"web-2", "dev"}} {
		id := e.mustEnroll(e.token(1, time.Hour, map[string]string{"env": n.env}), n.name)
		s, _ := e.connect(id)
		healthBeat(t, s, uint64(i+1), crit)
	}
	require.Eventually(t, func() bool { return len(e.alerts()) == 2 }, 5*time.Second, 20*time.Millisecond)

	acc := forlockv1.NewAccessServiceClient(e.dial(nil))
	as := func(name, scope string) []string {
		id, err := acc.CreateIdentity(e.admin(), &forlockv1.CreateIdentityRequest{Name: name, Role: "viewer", Scope: scope})
		require.NoError(t, err)
		ctx := metadata.NewOutgoingContext(t.Context(), metadata.Pairs("authorization", "Bearer "+id.GetSecret()))
		resp, err := forlockv1.NewAlertServiceClient(e.dial(nil)).ListAlerts(ctx, &forlockv1.ListAlertsRequest{})
		require.NoError(t, err)
		var nodes []string
		for _, a := range resp.GetAlerts() {
			nodes = append(nodes, a.GetNode())
		}
		return nodes
	}
	require.ElementsMatch(t, []string{"web-1", "web-2"}, as("viewer", ""))
	require.Equal(t, []string{"web-1"}, as("prod-viewer", "env=prod"))
}

// Someone with the database file changes an audit record while the control
// plane is down: the verification at start finds it, ForlockAuditChainBroken
// fires and the metric says 0.
func TestAuditChainBrokenAlerts(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cp")
	e := startEnvIn(t, dir, nil)
	e.token(1, time.Hour, nil) // an audited call
	e.stop()

	db, err := bolt.Open(filepath.Join(dir, "fleet.db"), 0o600, &bolt.Options{Timeout: 5 * time.Second})
	require.NoError(t, err)
	require.NoError(t, db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("audit"))
		require.NotNil(t, b)
		k, v := b.Cursor().Last()
		require.NotNil(t, k)
		changed := bytes.Clone(v)
		changed[len(changed)/2] ^= 0xff
		return b.Put(k, changed)
	}))
	require.NoError(t, db.Close())

	e = startEnvIn(t, dir, func(c *Config) { c.Metrics.Listen = "127.0.0.1:0" })
	require.Eventually(t, func() bool {
		for _, a := range e.alerts() {
			if a.GetName() == "ForlockAuditChainBroken" {
				return a.GetSeverity() == "critical" && a.GetNode() == "" &&
					strings.HasPrefix(a.GetSummary(), "the audit log's chain does not verify: ")
			}
		}
		return false
	}, 10*time.Second, 50*time.Millisecond)
	resp, err := http.Get("http://" + e.srv.MetricsAddr().String() + "/metrics") //nolint:noctx // a test scrape
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	require.Contains(t, string(body), "\nforlock_audit_chain_intact 0\n")
}
