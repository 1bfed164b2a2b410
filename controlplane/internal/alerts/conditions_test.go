package alerts

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/forlock/fleet/controlplane/internal/registry"
	"github.com/forlock/fleet/controlplane/internal/store"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

var t0 = time.Date(2026, 12, 4, 3, 0, 0, 0, time.UTC)

func check(name string, status forlockv1.CheckStatus, ms ...*forlockv1.Measurement) *forlockv1.CheckResult {
	return &forlockv1.CheckResult{Name: name, Status: status, Measurements: ms}
}

func meas(name string, v float64, subject string) *forlockv1.Measurement {
	return &forlockv1.Measurement{Name: name, Value: v, Subject: subject}
}

const okStatus = forlockv1.CheckStatus_CHECK_STATUS_OK

func sample(checks ...*forlockv1.CheckResult) registry.Sample {
	return registry.Sample{ID: "n1", Name: "web-1", State: store.StateOnline, LastHeartbeat: t0, Health: &forlockv1.HealthReport{Checks: checks}}
}

// names returns name/label pairs of what holds, to compare simply.
func names(as []Alert) []string {
	var out []string
	for _, a := range as {
		s := a.Severity + " " + a.Name
		for _, k := range []string{"check", "path", "address"} {
			if v, ok := a.Labels[k]; ok {
				s += " " + k + "=" + v
			}
		}
		out = append(out, s)
	}
	return out
}

func TestNodeConditionsAtTheirThresholds(t *testing.T) {
	d := Defaults
	cases := []struct {
		name string
		s    registry.Sample
		want []string
	}{
		{"all well", sample(check("disk", okStatus, meas("free_ratio", 0.5, "/var/lib/forlock"))), nil},
		{"unreachable", registry.Sample{ID: "n1", Name: "web-1", State: store.StateUnreachable}, []string{"critical ForlockNodeUnreachable"}},
		{"offline", registry.Sample{ID: "n1", Name: "web-1", State: store.StateOffline}, []string{"critical ForlockNodeUnreachable"}},
		{"enrolled, never connected", registry.Sample{ID: "n1", Name: "web-1", State: store.StateEnrolled}, nil},
		{"check critical", sample(check("redis", forlockv1.CheckStatus_CHECK_STATUS_CRITICAL)), []string{"critical ForlockCheckCritical check=redis"}},
		{"check warn is not critical", sample(check("redis", forlockv1.CheckStatus_CHECK_STATUS_WARN)), nil},
		{"wal archive pseudo-check", registry.Sample{ID: "n1", Name: "web-1", State: store.StateOnline,
			Archive: check("wal_archive", forlockv1.CheckStatus_CHECK_STATUS_CRITICAL)}, []string{"critical ForlockCheckCritical check=wal_archive"}},
		{"disk at threshold", sample(check("disk/backup", okStatus, meas("free_ratio", d.DiskFreeRatio, "/backups"))), nil},
		{"disk below", sample(check("disk/backup", okStatus, meas("free_ratio", 0.0999, "/backups"))),
			[]string{"critical ForlockDiskSpaceLow check=disk/backup path=/backups"}},
		{"free_ratio of another check", sample(check("memory", okStatus, meas("free_ratio", 0.01, ""))), nil},
		{"memory at", sample(check("memory", okStatus, meas("used_ratio", 0.90, ""))), nil},
		{"memory over", sample(check("memory", okStatus, meas("used_ratio", 0.9001, ""))), []string{"critical ForlockMemoryHigh"}},
		{"cpu at", sample(check("cpu", okStatus, meas("used_ratio", 0.85, ""))), nil},
		{"cpu over", sample(check("cpu", okStatus, meas("used_ratio", 0.86, ""))), []string{"critical ForlockCPUHigh"}},
		{"api at", sample(check("api", okStatus, meas("p95_seconds", 0.5, ""))), nil},
		{"api over", sample(check("api", okStatus, meas("p95_seconds", 0.51, ""))), []string{"critical ForlockAPILatencyHigh"}},
		{"db at", sample(check("postgres", okStatus, meas("connections", 90, ""), meas("max_connections", 100, ""))), nil},
		{"db over", sample(check("postgres", okStatus, meas("connections", 91, ""), meas("max_connections", 100, ""))),
			[]string{"critical ForlockDBConnectionsHigh"}},
		{"db without max", sample(check("postgres", okStatus, meas("connections", 91, ""))), nil},
		{"logins at", sample(check("logins", okStatus, meas("failed_logins_per_minute", 10, "203.0.113.7"))), nil},
		{"logins over", sample(check("logins", okStatus, meas("failed_logins_per_minute", 11, "203.0.113.7"), meas("failed_logins_per_minute", 3, "198.51.100.1"))),
			[]string{"critical ForlockFailedLogins address=203.0.113.7"}},
		{"logins subject not an address", sample(check("logins", okStatus, meas("failed_logins_per_minute", 99, "password=hunter2"))), nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			require.Equal(t, c.want, names(nodeConditions(c.s, d, t0)))
		})
	}
}

func TestCertificateStages(t *testing.T) {
	at := func(left time.Duration) registry.Sample {
		s := sample()
		s.Health.Certificate = &forlockv1.CertificateInfo{NotAfter: timestamppb.New(t0.Add(left))}
		return s
	}
	require.Empty(t, nodeConditions(at(14*24*time.Hour), Defaults, t0))
	require.Equal(t, []string{"warning ForlockCertificateExpiring"}, names(nodeConditions(at(14*24*time.Hour-time.Second), Defaults, t0)))
	require.Equal(t, []string{"warning ForlockCertificateExpiring"}, names(nodeConditions(at(3*24*time.Hour), Defaults, t0)))
	require.Equal(t, []string{"critical ForlockCertificateExpiring"}, names(nodeConditions(at(3*24*time.Hour-time.Second), Defaults, t0)))
	require.Equal(t, []string{"critical ForlockCertificateExpiring"}, names(nodeConditions(at(-time.Hour), Defaults, t0)))
}

func TestBackupAndWALConditions(t *testing.T) {
	s := sample()
	d := Defaults
	require.Empty(t, backupConditions(s, d, t0, false, t0.Add(-26*time.Hour), time.Time{}))
	require.Equal(t, []string{"warning ForlockBackupTooOld"}, names(backupConditions(s, d, t0, false, t0.Add(-26*time.Hour-time.Second), time.Time{})))
	require.Empty(t, backupConditions(s, d, t0, false, time.Time{}, time.Time{}), "no schedule, never a backup: not watched")
	require.Equal(t, []string{"warning ForlockBackupTooOld"}, names(backupConditions(s, d, t0, true, time.Time{}, time.Time{})))

	require.Empty(t, backupConditions(s, d, t0, false, time.Time{}, t0.Add(-time.Hour)), "archive off: no WAL alert")
	s.Archive = check("wal_archive", okStatus)
	require.Empty(t, backupConditions(s, d, t0, false, time.Time{}, t0.Add(-5*time.Minute)))
	require.Equal(t, []string{"warning ForlockWALArchiveBehind"}, names(backupConditions(s, d, t0, false, time.Time{}, t0.Add(-5*time.Minute-time.Second))))
}

func TestOverrideThresholds(t *testing.T) {
	low := 0.5
	base, overrides, err := Resolve(ThresholdsFile{}, []OverrideFile{
		{Selector: "env=prod", Thresholds: ThresholdsFile{CPUUsedRatio: &low}},
		{Selector: "env", Thresholds: ThresholdsFile{MemoryUsedRatio: &low}},
	})
	require.NoError(t, err)
	require.Equal(t, Defaults, base)
	s := sample(check("cpu", okStatus, meas("used_ratio", 0.6, "")), check("memory", okStatus, meas("used_ratio", 0.6, "")))
	for _, c := range []struct {
		labels map[string]string
		want   []string
	}{
		{map[string]string{"env": "prod"}, []string{"critical ForlockCPUHigh"}}, // first match wins: memory keeps 0.9
		{map[string]string{"env": "dev"}, []string{"critical ForlockMemoryHigh"}},
		{nil, nil},
	} {
		require.Equal(t, c.want, names(nodeConditions(s, thresholdsFor(base, overrides, c.labels), t0)), c.labels)
	}
}

func TestResolveRefusesBadThresholds(t *testing.T) {
	big, neg, d0 := 1.5, -1.0, time.Duration(0)
	long := 30 * 24 * time.Hour
	cases := []struct {
		fleet     ThresholdsFile
		overrides []OverrideFile
		want      string
	}{
		{ThresholdsFile{DiskFreeRatio: &big}, nil, "alerting.thresholds: disk_free_ratio 1.5: give a ratio from 0 to 1"},
		{ThresholdsFile{APIP95Seconds: &neg}, nil, "api_p95_seconds -1: give a positive number of seconds"},
		{ThresholdsFile{BackupMaxAge: &d0}, nil, "backup_max_age 0s: give a positive duration"},
		{ThresholdsFile{CertificateCritical: &long}, nil, "certificate_critical 720h0m0s is longer than certificate_warning"},
		{ThresholdsFile{}, []OverrideFile{{Selector: ""}}, "alerting.overrides[0]: give a selector"},
		{ThresholdsFile{}, []OverrideFile{{Selector: "env=prod", Thresholds: ThresholdsFile{CPUUsedRatio: &neg}}},
			"alerting.overrides[0] (env=prod): cpu_used_ratio -1"},
	}
	for _, c := range cases {
		_, _, err := Resolve(c.fleet, c.overrides)
		require.ErrorContains(t, err, c.want)
	}
}

// Every alert's runbook URL names an anchor docs/operations.md has.
func TestRunbookAnchorsExist(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "..", "docs", "operations.md"))
	require.NoError(t, err)
	require.Len(t, Names, 16)
	for _, n := range Names {
		url := RunbookURL(n)
		_, anchor, ok := strings.Cut(url, "#")
		require.True(t, ok, url)
		require.Contains(t, string(doc), `<a id="`+anchor+`"></a>`+"\n#### "+n+" (", n)
	}
}

// The built-in alerting and the Prometheus rules file alert by the same
// names, so one runbook serves both; only ForlockControlPlaneDown is the
// rules file's alone (a control plane cannot see itself down).
func TestNamesMatchTheRulesFile(t *testing.T) {
	rules, err := os.ReadFile(filepath.Join("..", "..", "..", "deploy", "prometheus", "forlock-rules.yml"))
	require.NoError(t, err)
	var inRules []string
	for _, line := range strings.Split(string(rules), "\n") {
		if name, ok := strings.CutPrefix(strings.TrimSpace(line), "- alert: "); ok {
			inRules = append(inRules, name)
		}
	}
	want := append([]string{"ForlockControlPlaneDown"}, Names...)
	require.ElementsMatch(t, want, inRules)
}
