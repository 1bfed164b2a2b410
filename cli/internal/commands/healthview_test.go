package commands

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/timestamppb"

	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

func check(name string, s forlockv1.CheckStatus, msg string) *forlockv1.CheckResult {
	return &forlockv1.CheckResult{Name: name, Status: s, Message: msg}
}

const (
	ok   = forlockv1.CheckStatus_CHECK_STATUS_OK
	warn = forlockv1.CheckStatus_CHECK_STATUS_WARN
	crit = forlockv1.CheckStatus_CHECK_STATUS_CRITICAL
)

func TestDetailRow(t *testing.T) {
	tests := []struct {
		line string
		want checkRow
	}{
		{"disk OK 63% free (81.8 GiB of 252 GiB)", checkRow{node: "n", check: "disk", status: "OK", message: "63% free (81.8 GiB of 252 GiB)"}},
		{"memory  CRITICAL   95% used", checkRow{node: "n", check: "memory", status: "CRITICAL", message: "95% used"}},
		{"redis UNKNOWN", checkRow{node: "n", check: "redis", status: "UNKNOWN"}},
		{"disk /: ok on web-1", checkRow{node: "n", check: "-", message: "disk /: ok on web-1"}},
		{"OK", checkRow{node: "n", check: "-", message: "OK"}},
		{"", checkRow{node: "n", check: "-"}},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			require.Equal(t, tt.want, detailRow("n", tt.line))
		})
	}
}

func TestTaskRows(t *testing.T) {
	report := &forlockv1.HealthReport{Checks: []*forlockv1.CheckResult{check("disk", ok, "63% free"), check("redis", crit, "connection refused")}}
	tests := []struct {
		name string
		task *forlockv1.Task
		want []checkRow
	}{
		{"structured report wins over details", &forlockv1.Task{NodeName: "web-1", State: forlockv1.TaskState_TASK_STATE_FAILED,
			Health: report, Details: []string{"disk OK x"}, Message: "CRITICAL: redis"}, []checkRow{
			{node: "web-1", check: "disk", status: "OK", message: "63% free"},
			{node: "web-1", check: "redis", status: "CRITICAL", message: "connection refused"},
		}},
		{"details when there is no report", &forlockv1.Task{NodeName: "web-1", State: forlockv1.TaskState_TASK_STATE_SUCCEEDED,
			Details: []string{"disk WARN 15% free", "memory OK 40% used"}}, []checkRow{
			{node: "web-1", check: "disk", status: "WARN", message: "15% free"},
			{node: "web-1", check: "memory", status: "OK", message: "40% used"},
		}},
		{"a failure without a CRITICAL check shows why", &forlockv1.Task{NodeName: "web-2", State: forlockv1.TaskState_TASK_STATE_FAILED,
			Details: []string{"disk OK 50% free"}, Message: "context deadline\nexceeded"}, []checkRow{
			{node: "web-2", check: "disk", status: "OK", message: "50% free"},
			{node: "web-2", check: "-", status: "failed", message: "context deadline exceeded"},
		}},
		{"skipped", &forlockv1.Task{NodeName: "web-3", State: forlockv1.TaskState_TASK_STATE_SKIPPED, Message: "node offline"},
			[]checkRow{{node: "web-3", check: "-", status: "skipped", message: "node offline"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, taskRows(tt.task))
		})
	}
}

func TestPrintHealthTable(t *testing.T) {
	rows := []checkRow{
		{node: "web-1", check: "disk", status: "OK", message: "63% free"},
		{node: "web-1", check: "memory", status: "WARN", message: "85% used"},
		{node: "db-10", check: "redis", status: "CRITICAL", message: "connection refused"},
		{node: "db-10", check: "-", status: "failed"},
	}
	t.Run("plain", func(t *testing.T) {
		var out bytes.Buffer
		require.NoError(t, printHealthTable(&out, rows, false, false))
		require.Equal(t, `NODE   CHECK   STATUS    MESSAGE
web-1  disk    OK        63% free
web-1  memory  WARN      85% used
db-10  redis   CRITICAL  connection refused
db-10  -       failed    -
`, out.String())
		require.NotContains(t, out.String(), "\x1b", "no colours off a terminal")
	})
	t.Run("colour keeps the columns aligned", func(t *testing.T) {
		var out bytes.Buffer
		require.NoError(t, printHealthTable(&out, rows, false, true))
		lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
		require.Contains(t, lines[1], ansiGreen+"OK"+ansiReset)
		require.Contains(t, lines[2], ansiYellow+"WARN"+ansiReset)
		require.Contains(t, lines[3], ansiRed+"CRITICAL"+ansiReset)
		require.Contains(t, lines[4], ansiRed+"failed"+ansiReset)
		col := strings.Index(lines[1], "63% free")
		for i, want := range []string{"85% used", "connection refused"} {
			require.Equal(t, col, strings.Index(lines[i+2], want), "MESSAGE column of line %d", i+2)
		}
	})
	t.Run("cached with age", func(t *testing.T) {
		var out bytes.Buffer
		require.NoError(t, printHealthTable(&out, []checkRow{{node: "web-1", check: "disk", status: "OK", message: "63% free", checked: "4s ago"}}, true, false))
		require.Equal(t, "NODE   CHECK  STATUS  CHECKED  MESSAGE\nweb-1  disk   OK      4s ago   63% free\n", out.String())
	})
}

func TestNodeRows(t *testing.T) {
	n := &forlockv1.Node{Name: "web-1", State: forlockv1.NodeState_NODE_STATE_ONLINE, Health: &forlockv1.HealthReport{
		CheckedAt: timestamppb.New(renderNow.Add(-4 * time.Second)),
		Checks:    []*forlockv1.CheckResult{check("disk", ok, "63% free")},
	}}
	require.Equal(t, []checkRow{{node: "web-1", check: "disk", status: "OK", message: "63% free", checked: "4s ago"}}, nodeRows(renderNow, n))

	off := &forlockv1.Node{Name: "web-2", State: forlockv1.NodeState_NODE_STATE_OFFLINE}
	rows := nodeRows(renderNow, off)
	require.Len(t, rows, 1)
	require.Equal(t, "no health report yet: the agent has sent none since the control plane started (node offline)", rows[0].message)
}

func TestPrintContainerTable(t *testing.T) {
	var out bytes.Buffer
	require.NoError(t, printContainerTable(&out, renderNow, []nodeContainers{{node: "web-1"}}))
	require.Empty(t, out.String(), "no containers, no table")

	sets := []nodeContainers{{node: "web-1", containers: []*forlockv1.ContainerStatus{
		{Name: "forlock-api", Service: "api", State: "running", Health: "healthy", RestartCount: 2,
			Image: "registry.example.com/forlock/api:1.4.2@sha256:abcd", StartedAt: timestamppb.New(renderNow.Add(-3 * time.Hour)),
			CpuPercent: 12.34, MemoryBytes: 256 << 20, MemoryLimitBytes: 1 << 30},
		{Name: "forlock-redis", Service: "redis", State: "exited", Image: "redis:7"},
	}}}
	require.NoError(t, printContainerTable(&out, renderNow, sets))
	require.Equal(t, `
NODE   CONTAINER      SERVICE  STATE    HEALTH   RESTARTS  IMAGE      UP  CPU    MEMORY
web-1  forlock-api    api      running  healthy  2         api:1.4.2  3h  12.3%  256.0 MiB / 1.0 GiB
web-1  forlock-redis  redis    exited   -        0         redis:7    -   0.0%   -
`, out.String())
}

func TestShortImage(t *testing.T) {
	for in, want := range map[string]string{
		"registry.example.com:5000/forlock/api:1.4.2@sha256:ab": "api:1.4.2",
		"forlock-postgres:15": "forlock-postgres:15",
		"sha256:abcdef":       "sha256:abcdef",
		"":                    "",
	} {
		require.Equal(t, want, shortImage(in), in)
	}
}

func TestHealthResult(t *testing.T) {
	task := func(state forlockv1.TaskState, checks ...*forlockv1.CheckResult) *forlockv1.Task {
		return &forlockv1.Task{State: state, Health: &forlockv1.HealthReport{Checks: checks}}
	}
	succeeded, failed := forlockv1.TaskState_TASK_STATE_SUCCEEDED, forlockv1.TaskState_TASK_STATE_FAILED
	tests := []struct {
		name  string
		state forlockv1.JobState
		tasks []*forlockv1.Task
		code  int
	}{
		{"all OK", forlockv1.JobState_JOB_STATE_SUCCEEDED, []*forlockv1.Task{task(succeeded, check("disk", ok, ""))}, ExitOK},
		{"WARN passes", forlockv1.JobState_JOB_STATE_SUCCEEDED, []*forlockv1.Task{task(succeeded, check("disk", warn, ""))}, ExitOK},
		{"partially failed", forlockv1.JobState_JOB_STATE_PARTIALLY_FAILED, []*forlockv1.Task{task(succeeded), task(failed, check("disk", crit, ""))}, ExitJobPartial},
		{"failed", forlockv1.JobState_JOB_STATE_FAILED, []*forlockv1.Task{task(failed)}, ExitFailure},
		{"cancelled", forlockv1.JobState_JOB_STATE_CANCELLED, []*forlockv1.Task{task(succeeded)}, ExitFailure},
		{"CRITICAL in a succeeded task", forlockv1.JobState_JOB_STATE_SUCCEEDED,
			[]*forlockv1.Task{task(succeeded, check("disk", ok, "")), task(succeeded, check("redis", crit, ""))}, ExitJobPartial},
		{"CRITICAL in every succeeded task", forlockv1.JobState_JOB_STATE_SUCCEEDED,
			[]*forlockv1.Task{task(succeeded, check("redis", crit, ""))}, ExitFailure},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := healthResult(&forlockv1.Job{Id: "j1", State: tt.state, Tasks: tt.tasks})
			if tt.code == ExitOK {
				require.NoError(t, err)
				return
			}
			var ee *exitError
			require.ErrorAs(t, err, &ee)
			require.Equal(t, tt.code, ee.code)
		})
	}
}

func TestCachedResult(t *testing.T) {
	nodes := []*forlockv1.Node{
		{Name: "web-1", Health: &forlockv1.HealthReport{Checks: []*forlockv1.CheckResult{check("disk", warn, "")}}},
		{Name: "web-2"},
	}
	require.NoError(t, cachedResult(nodes), "WARN and missing reports pass")
	nodes[1].Health = &forlockv1.HealthReport{Checks: []*forlockv1.CheckResult{check("redis", crit, "")}}
	err := cachedResult(nodes)
	var ee *exitError
	require.ErrorAs(t, err, &ee)
	require.Equal(t, ExitJobPartial, ee.code)
	require.EqualError(t, err, "CRITICAL in the last reports: web-2 redis")
}
