package metrics

import (
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/forlock/fleet/controlplane/internal/newest"
	"github.com/forlock/fleet/controlplane/internal/registry"
	"github.com/forlock/fleet/controlplane/internal/store"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

type fakeFleet []registry.Sample

func (f fakeFleet) Samples() []registry.Sample { return f }

// flatten gathers reg into `name{k="v",...}` -> value, labels sorted.
func flatten(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var ls []string
			for _, l := range m.GetLabel() {
				ls = append(ls, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			sort.Strings(ls)
			v := m.GetGauge().GetValue() + m.GetCounter().GetValue()
			out[mf.GetName()+"{"+strings.Join(ls, ",")+"}"] = v
		}
	}
	return out
}

func rpID(at time.Time) string { return fmt.Sprintf("%016x0000", at.UnixNano()) }

func restorePoint(node string, at time.Time, arts ...*forlockv1.Artifact) *forlockv1.RestorePoint {
	for i, a := range arts {
		a.Id, a.CreatedAt = fmt.Sprintf("%s-%d-%d", node, at.Unix(), i), timestamppb.New(at)
	}
	return &forlockv1.RestorePoint{Id: rpID(at), NodeId: node, CreatedAt: timestamppb.New(at), Artifacts: arts}
}

func art(kind forlockv1.ArtifactKind, size uint64, state forlockv1.ArtifactState) *forlockv1.Artifact {
	return &forlockv1.Artifact{Kind: kind, SizeBytes: size, State: state}
}

const (
	pg, rdb, cfg = forlockv1.ArtifactKind_ARTIFACT_KIND_POSTGRES, forlockv1.ArtifactKind_ARTIFACT_KIND_REDIS, forlockv1.ArtifactKind_ARTIFACT_KIND_CONFIG
	ok, gone     = forlockv1.ArtifactState_ARTIFACT_STATE_AVAILABLE, forlockv1.ArtifactState_ARTIFACT_STATE_DELETED
)

func TestCollectorReadsFleetAndStore(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "fleet.db"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	now := time.Unix(1_800_000_000, 0)
	t1, t2, t3 := now.Add(-3*time.Hour), now.Add(-2*time.Hour), now.Add(-time.Hour)

	// n1: a full backup, then a newer postgres-only one; n2: a backup whose
	// artifacts were all deleted; n3 (removed from the fleet): a backup.
	require.NoError(t, st.SaveJobs(store.JobWrite{RestorePoints: []*forlockv1.RestorePoint{
		restorePoint("n1", t1, art(pg, 100, ok), art(rdb, 20, ok), art(cfg, 3, ok)),
		restorePoint("n2", t1.Add(time.Second), art(pg, 50, gone)),
		restorePoint("n3", t1.Add(2*time.Second), art(pg, 7, ok)),
		restorePoint("n1", t2, art(pg, 110, ok), art(rdb, 5, gone)),
	}}))
	walEnd := now.Add(-90 * time.Second)
	_, err = st.MergeWalRanges(map[string][]*forlockv1.WalRange{"n1": {{
		NodeId: "n1", Timeline: 1, StartLsn: "0/1000000", EndLsn: "0/3000000",
		StartTime: timestamppb.New(t1), EndTime: timestamppb.New(walEnd), Segments: 2, SizeBytes: 32 << 20,
	}}})
	require.NoError(t, err)

	checks := []*forlockv1.CheckResult{
		{Name: "disk", Status: forlockv1.CheckStatus_CHECK_STATUS_OK},
		{Name: "memory", Status: forlockv1.CheckStatus_CHECK_STATUS_WARN},
		{Name: "api", Status: forlockv1.CheckStatus_CHECK_STATUS_CRITICAL},
		{Name: "redis", Status: forlockv1.CheckStatus_CHECK_STATUS_UNKNOWN},
		{Name: "redis", Status: forlockv1.CheckStatus_CHECK_STATUS_OK}, // a duplicate is dropped
		{Name: "unset"},
	}
	certEnd := now.Add(30 * 24 * time.Hour)
	fleet := fakeFleet{
		{ID: "n1", Name: "web-1", State: store.StateOnline, LastHeartbeat: now.Add(-1500 * time.Millisecond),
			Facts:   &forlockv1.HostFacts{DiskTotalBytes: 1000, DiskFreeBytes: 250, MemoryTotalBytes: 400, MemoryAvailableBytes: 100},
			Health:  &forlockv1.HealthReport{Checks: checks, Certificate: &forlockv1.CertificateInfo{NotAfter: timestamppb.New(certEnd)}},
			Archive: &forlockv1.CheckResult{Name: "wal_archive_gap", Status: forlockv1.CheckStatus_CHECK_STATUS_WARN}},
		{ID: "n2", Name: "web-2", State: store.StateUnreachable},
	}
	m := New()
	c := &collector{fleet: fleet, catalog: st, log: slog.New(slog.NewTextHandler(io.Discard, nil)), now: func() time.Time { return now }}
	m.Registry.MustRegister(c)
	got := flatten(t, m.Registry)

	want := map[string]float64{
		`forlock_nodes{state="online"}`:      1,
		`forlock_nodes{state="unreachable"}`: 1,
		`forlock_nodes{state="enrolled"}`:    0,
		`forlock_nodes{state="offline"}`:     0,

		`forlock_node_state{node="web-1",state="online"}`:      1,
		`forlock_node_state{node="web-2",state="unreachable"}`: 1,
		`forlock_node_heartbeat_age_seconds{node="web-1"}`:     1.5,

		`forlock_node_check_status{check="disk",node="web-1"}`:            0,
		`forlock_node_check_status{check="memory",node="web-1"}`:          1,
		`forlock_node_check_status{check="api",node="web-1"}`:             2,
		`forlock_node_check_status{check="redis",node="web-1"}`:           3,
		`forlock_node_check_status{check="wal_archive_gap",node="web-1"}`: 1,

		`forlock_node_disk_free_ratio{check="disk",node="web-1",path=""}`: 0.25,
		`forlock_node_memory_used_ratio{node="web-1"}`:                    0.75,
		`forlock_node_certificate_expiry_timestamp_seconds{node="web-1"}`: float64(certEnd.Unix()),

		`forlock_backup_last_success_timestamp_seconds{kind="postgres",node="web-1"}`: float64(t2.Unix()),
		`forlock_backup_last_success_timestamp_seconds{kind="redis",node="web-1"}`:    float64(t1.Unix()),
		`forlock_backup_last_success_timestamp_seconds{kind="config",node="web-1"}`:   float64(t1.Unix()),
		`forlock_backup_last_size_bytes{node="web-1"}`:                                110,

		`forlock_wal_archived_end_timestamp_seconds{node="web-1"}`: float64(walEnd.Unix()),
		`forlock_collector_errors_total{}`:                         0,
		`forlock_store_disk_full{}`:                                0,
	}
	for k, v := range want {
		require.Contains(t, got, k)
		require.InDelta(t, v, got[k], 1e-6, k)
	}
	// Nothing else about the fleet: no series for n2's deleted backup, none
	// for the removed n3, none for a check without status.
	for k := range got {
		if strings.HasPrefix(k, "forlock_node") || strings.HasPrefix(k, "forlock_backup") || strings.HasPrefix(k, "forlock_wal") {
			require.Contains(t, want, k, "unexpected series")
		}
	}
	require.Greater(t, got[`forlock_store_size_bytes{}`], 0.0)

	// A newer backup is read by the next scrape without a full scan; a
	// deletion shows only at the next full scan.
	require.NoError(t, st.SaveJobs(store.JobWrite{RestorePoints: []*forlockv1.RestorePoint{
		restorePoint("n2", t3, art(rdb, 9, ok)),
		restorePoint("n1", t2, art(pg, 110, gone), art(rdb, 5, gone)), // n1's newest deleted
	}}))
	got = flatten(t, m.Registry)
	require.InDelta(t, float64(t3.Unix()), got[`forlock_backup_last_success_timestamp_seconds{kind="redis",node="web-2"}`], 1e-6)
	require.InDelta(t, 9.0, got[`forlock_backup_last_size_bytes{node="web-2"}`], 1e-6)
	require.InDelta(t, float64(t2.Unix()), got[`forlock_backup_last_success_timestamp_seconds{kind="postgres",node="web-1"}`], 1e-6)

	now = now.Add(newest.FullScanEvery)
	got = flatten(t, m.Registry)
	require.InDelta(t, float64(t1.Unix()), got[`forlock_backup_last_success_timestamp_seconds{kind="postgres",node="web-1"}`], 1e-6)
	require.InDelta(t, 123.0, got[`forlock_backup_last_size_bytes{node="web-1"}`], 1e-6)
}

func TestChecksPerNodeCapped(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "fleet.db"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	var checks []*forlockv1.CheckResult
	for i := range 100 {
		checks = append(checks, &forlockv1.CheckResult{Name: fmt.Sprintf("c%03d", i), Status: forlockv1.CheckStatus_CHECK_STATUS_OK})
	}
	m := New()
	m.Watch(fakeFleet{{ID: "n1", Name: "a", State: store.StateOnline, Health: &forlockv1.HealthReport{Checks: checks}}}, st,
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	n := 0
	for k := range flatten(t, m.Registry) {
		if strings.HasPrefix(k, "forlock_node_check_status{") {
			n++
		}
	}
	require.Equal(t, MaxChecksPerNode, n)
}

func TestMeasurementsBecomeBoundedSeries(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "fleet.db"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	meas := func(name string, v float64, subject string) *forlockv1.Measurement {
		return &forlockv1.Measurement{Name: name, Value: v, Subject: subject}
	}
	logins := &forlockv1.CheckResult{Name: "logins", Status: forlockv1.CheckStatus_CHECK_STATUS_CRITICAL,
		Measurements: []*forlockv1.Measurement{meas("blocked_addresses", 2, "")}}
	for i := range 7 { // more addresses than the 5 a node may export
		logins.Measurements = append(logins.Measurements, meas("failed_logins_per_minute", float64(30-i), fmt.Sprintf("10.0.0.%d", i)))
	}
	checks := []*forlockv1.CheckResult{
		{Name: "disk", Status: forlockv1.CheckStatus_CHECK_STATUS_OK, Measurements: []*forlockv1.Measurement{meas("free_ratio", 0.5, "/var/lib/forlock-agent")}},
		{Name: "disk/backup", Status: forlockv1.CheckStatus_CHECK_STATUS_WARN, Measurements: []*forlockv1.Measurement{
			meas("free_ratio", 0.15, "/var/backups/forlock"), meas("free_ratio", 0.15, "/var/backups/forlock"), // duplicate dropped
			meas("free_ratio", 0.4, "/mnt/nas")}},
		{Name: "memory", Status: forlockv1.CheckStatus_CHECK_STATUS_OK, Measurements: []*forlockv1.Measurement{meas("used_ratio", 0.6, "")}},
		{Name: "cpu", Status: forlockv1.CheckStatus_CHECK_STATUS_OK, Measurements: []*forlockv1.Measurement{meas("used_ratio", 0.3, "")}},
		{Name: "api", Status: forlockv1.CheckStatus_CHECK_STATUS_OK, Measurements: []*forlockv1.Measurement{
			meas("p95_seconds", 0.12, ""), meas("mystery_seconds", 9, "")}}, // unknown: not exported
		{Name: "postgres", Status: forlockv1.CheckStatus_CHECK_STATUS_OK, Measurements: []*forlockv1.Measurement{
			meas("connections", 12, ""), meas("max_connections", 100, "")}},
		{Name: "redis", Status: forlockv1.CheckStatus_CHECK_STATUS_OK, Measurements: []*forlockv1.Measurement{meas("used_ratio", 0.9, "")}}, // not a known pair
		logins,
	}
	m := New()
	// Host facts disagree with the measurements: the measurements win.
	m.Watch(fakeFleet{{ID: "n1", Name: "a", State: store.StateOnline,
		Facts:  &forlockv1.HostFacts{DiskTotalBytes: 10, DiskFreeBytes: 1, MemoryTotalBytes: 10, MemoryAvailableBytes: 1},
		Health: &forlockv1.HealthReport{Checks: checks}}}, st, slog.New(slog.NewTextHandler(io.Discard, nil)))
	got := flatten(t, m.Registry)
	want := map[string]float64{
		`forlock_node_disk_free_ratio{check="disk",node="a",path="/var/lib/forlock-agent"}`:      0.5,
		`forlock_node_disk_free_ratio{check="disk/backup",node="a",path="/var/backups/forlock"}`: 0.15,
		`forlock_node_disk_free_ratio{check="disk/backup",node="a",path="/mnt/nas"}`:             0.4,
		`forlock_node_memory_used_ratio{node="a"}`:                                               0.6,
		`forlock_node_cpu_used_ratio{node="a"}`:                                                  0.3,
		`forlock_node_api_latency_p95_seconds{node="a"}`:                                         0.12,
		`forlock_node_db_connections{node="a"}`:                                                  12,
		`forlock_node_db_connections_max{node="a"}`:                                              100,
		`forlock_node_blocked_addresses{node="a"}`:                                               2,
	}
	for i := range 5 {
		want[fmt.Sprintf(`forlock_node_failed_logins_per_minute{address="10.0.0.%d",node="a"}`, i)] = float64(30 - i)
	}
	for k, v := range want {
		require.Contains(t, got, k)
		require.InDelta(t, v, got[k], 1e-9, k)
	}
	for k := range got {
		if strings.HasPrefix(k, "forlock_node_") && !strings.HasPrefix(k, "forlock_node_check_status") && !strings.HasPrefix(k, "forlock_node_state") {
			require.Contains(t, want, k, "unexpected series")
		}
	}
}

func TestAlertsFiring(t *testing.T) {
	m := New()
	m.WatchAlerts(func() map[[2]string]int {
		return map[[2]string]int{{"ForlockCheckCritical", "critical"}: 2, {"ForlockJobFailed", "warning"}: 1}
	})
	got := flatten(t, m.Registry)
	require.InDelta(t, 2.0, got[`forlock_alerts_firing{alertname="ForlockCheckCritical",severity="critical"}`], 1e-9)
	require.InDelta(t, 1.0, got[`forlock_alerts_firing{alertname="ForlockJobFailed",severity="warning"}`], 1e-9)
}

func TestAuditChainIntact(t *testing.T) {
	m := New()
	checked, problem := false, ""
	m.WatchAudit(func() (bool, string) { return checked, problem })
	require.NotContains(t, flatten(t, m.Registry), `forlock_audit_chain_intact{}`, "absent before the first verification")
	checked = true
	require.InDelta(t, 1.0, flatten(t, m.Registry)[`forlock_audit_chain_intact{}`], 1e-9)
	problem = "record 7's hash does not match"
	got, ok := flatten(t, m.Registry)[`forlock_audit_chain_intact{}`]
	require.True(t, ok)
	require.InDelta(t, 0.0, got, 1e-9)
}
