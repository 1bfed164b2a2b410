package e2e

import (
	"bytes"
	"context"
	"io"
	"math"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/forlock/fleet/controlplane"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
	"github.com/forlock/fleet/test/testenv"
)

// scrape is one parsed /metrics answer.
type scrape struct {
	text     string
	families map[string]*dto.MetricFamily
}

func scrapeMetrics(t *testing.T, url string) scrape {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	require.NoError(t, err)
	defer func() { _ = resp.Body.Close() }()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
	require.NoError(t, err)
	return scrape{text: string(body), families: fams}
}

// series returns the metrics of family name whose labels include want.
func (s scrape) series(name string, want map[string]string) []*dto.Metric {
	var out []*dto.Metric
	for _, m := range s.families[name].GetMetric() {
		got := map[string]string{}
		for _, l := range m.GetLabel() {
			got[l.GetName()] = l.GetValue()
		}
		match := true
		for k, v := range want {
			match = match && got[k] == v
		}
		if match {
			out = append(out, m)
		}
	}
	return out
}

// sum adds the values (a histogram's count) of the matching series.
func (s scrape) sum(name string, want map[string]string) float64 {
	total := 0.0
	for _, m := range s.series(name, want) {
		total += m.GetGauge().GetValue() + m.GetCounter().GetValue() + float64(m.GetHistogram().GetSampleCount())
	}
	return total
}

// one returns the value of the single matching series.
func (s scrape) one(t *testing.T, name string, want map[string]string) float64 {
	t.Helper()
	ms := s.series(name, want)
	require.Len(t, ms, 1, "%s%v", name, want)
	return ms[0].GetGauge().GetValue() + ms[0].GetCounter().GetValue()
}

// equal compares metric values, exact up to float rounding.
func equal(t *testing.T, want, got float64, msg ...any) {
	t.Helper()
	require.InDelta(t, want, got, 1e-9, msg...)
}

var checkValues = map[forlockv1.CheckStatus]float64{
	forlockv1.CheckStatus_CHECK_STATUS_OK: 0, forlockv1.CheckStatus_CHECK_STATUS_WARN: 1,
	forlockv1.CheckStatus_CHECK_STATUS_CRITICAL: 2, forlockv1.CheckStatus_CHECK_STATUS_UNKNOWN: 3,
}

// promtool runs `promtool check metrics` on a scrape. Outside -short a
// missing promtool fails with the command that installs it.
func promtool(t *testing.T, text string) {
	t.Helper()
	path := testenv.RequireCommand(t, "promtool", "prometheus")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, "check", "metrics")
	cmd.Stdin = strings.NewReader(text)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "promtool check metrics:\n%s", out)
}

func TestMetricsOfTwoNodeFleet(t *testing.T) {
	f := newFleet(t, func(c *controlplane.Config) { c.Metrics.Listen = "127.0.0.1:0" })
	url := "http://" + f.cp.MetricsAddr().String() + "/metrics"
	token := f.joinToken(2)
	names := []string{"metrics-1", "metrics-2"}
	for _, n := range names {
		f.startAgent(n, f.cp.Addr().String(), token)
	}
	f.waitOnline(2)

	// One job over both nodes, one malformed join token, one wrong admin
	// token: each must show in the counters.
	job := f.submit(all, nil)
	f.watch(job.GetId())
	_, err := forlockv1.NewAgentServiceClient(f.conn).Enroll(f.admin(), &forlockv1.EnrollRequest{JoinToken: "not-a-token", Name: "intruder"})
	require.Equal(t, codes.InvalidArgument, status.Code(err))
	ctx, cancel := context.WithTimeout(metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer fat_wrong"), 10*time.Second)
	defer cancel()
	_, err = f.nodes.ListNodes(ctx, &forlockv1.ListNodesRequest{})
	require.Equal(t, codes.Unauthenticated, status.Code(err))

	// Both nodes have reported health after the job; wait for a heartbeat
	// to carry it, then compare the scrape with what the API says.
	for _, n := range names {
		require.Eventually(t, func() bool { return len(f.node(n).GetHealth().GetChecks()) > 0 }, 30*time.Second, 50*time.Millisecond)
	}
	s := scrapeMetrics(t, url)
	promtool(t, s.text)

	equal(t, 2.0, s.one(t, "forlock_nodes", map[string]string{"state": "online"}))
	equal(t, 0.0, s.one(t, "forlock_nodes", map[string]string{"state": "unreachable"}))
	for _, n := range names {
		node := f.node(n)
		lbl := map[string]string{"node": n}
		equal(t, 1.0, s.one(t, "forlock_node_state", map[string]string{"node": n, "state": "online"}))
		require.Less(t, s.one(t, "forlock_node_heartbeat_age_seconds", lbl), 3.0, "heartbeats every 200ms")
		checks := node.GetHealth().GetChecks()
		require.Len(t, s.series("forlock_node_check_status", lbl), len(checks))
		for _, c := range checks {
			equal(t, checkValues[c.GetStatus()], s.one(t, "forlock_node_check_status", map[string]string{"node": n, "check": c.GetName()}), c.GetName())
		}
		fa := node.GetFacts()
		require.InDelta(t, float64(fa.GetDiskFreeBytes())/float64(fa.GetDiskTotalBytes()),
			s.one(t, "forlock_node_disk_free_ratio", map[string]string{"node": n, "check": "disk"}), 0.02)
		cpu := s.one(t, "forlock_node_cpu_used_ratio", lbl)
		require.True(t, cpu >= 0 && cpu <= 1, "cpu used ratio %v", cpu)
		used := s.one(t, "forlock_node_memory_used_ratio", lbl)
		require.True(t, used > 0 && used < 1, "memory used ratio %v", used)
		// The series budget (docs/operations.md): 14 per node, one per
		// check, at most 8 directories and 5 attacking addresses.
		perNode := 0
		for _, fam := range s.families {
			perNode += len(s.series(fam.GetName(), lbl))
		}
		disks, logins := len(s.series("forlock_node_disk_free_ratio", lbl)), len(s.series("forlock_node_failed_logins_per_minute", lbl))
		require.LessOrEqual(t, disks, 8)
		require.LessOrEqual(t, logins, 5)
		require.LessOrEqual(t, perNode, 14+len(checks)+disks+logins, "series of node %s", n)
	}

	equal(t, 1.0, s.sum("forlock_jobs_total", map[string]string{"kind": "health_check"}))
	equal(t, 2.0, s.sum("forlock_tasks_total", map[string]string{"kind": "health_check"}))
	equal(t, 2.0, s.sum("forlock_task_duration_seconds", map[string]string{"kind": "health_check"}))
	equal(t, 1.0, s.one(t, "forlock_enrollment_failures_total", map[string]string{"reason": "token_malformed"}))
	equal(t, 1.0, s.one(t, "forlock_auth_failures_total", map[string]string{"credential": "join_token", "reason": "refused"}))
	equal(t, 1.0, s.one(t, "forlock_auth_failures_total", map[string]string{"credential": "bearer_token", "reason": "refused"}))
	equal(t, 3.0, s.sum("grpc_server_handled_total", map[string]string{"grpc_method": "Enroll"}), "two agents and the intruder")
	equal(t, 1.0, s.sum("grpc_server_handled_total", map[string]string{"grpc_method": "ListNodes", "grpc_code": "Unauthenticated"}))
	require.Positive(t, s.sum("forlock_store_commit_duration_seconds", nil))
	require.Positive(t, s.one(t, "forlock_store_size_bytes", nil))
	require.False(t, math.IsNaN(s.one(t, "forlock_collector_errors_total", nil)))
	equal(t, 0.0, s.one(t, "forlock_collector_errors_total", nil))
}
