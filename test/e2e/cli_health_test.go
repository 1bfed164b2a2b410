package e2e

import (
	"context"
	"errors"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/forlock/fleet/agent"
	"github.com/forlock/fleet/internal/protocol"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// noEngine points the in-process agents' Docker client at a socket where
// no engine listens, so that their container checks are UNKNOWN whatever
// runs on the host's engine, and the host's disk and memory decide the
// outcome. The Forlock test node tests check containers on a real engine.
func noEngine(t *testing.T) {
	t.Helper()
	t.Setenv("DOCKER_HOST", "unix://"+filepath.Join(t.TempDir(), "no-engine.sock"))
}

// realFleet starts a control plane and one agent per name with the
// agent's built-in handlers, and waits until all are online.
func realFleet(t *testing.T, names ...string) (*fleet, map[string]*runningAgent) {
	t.Helper()
	noEngine(t)
	f := newFleet(t, nil)
	token := f.joinToken(uint32(len(names)))
	agents := map[string]*runningAgent{}
	for _, n := range names {
		agents[n] = f.runAgent(agentOpts{name: n, token: token})
	}
	f.waitOnline(len(names))
	return f, agents
}

// hostCheckRow matches a health table row of a host check of node.
func hostCheckRow(node, check string) string {
	return `(?m)^` + regexp.QuoteMeta(node) + `\s+` + check + `\s+(OK|WARN|UNKNOWN)\s+\S`
}

func TestCtlHealthOnRealAgents(t *testing.T) {
	f, _ := realFleet(t, "web-1", "web-2")

	code, stdout, stderr := runCtl(t, args(f.ctl(), "health", "--all")...)
	require.Equal(t, 0, code, "stderr: %s\nstdout: %s", stderr, stdout)
	require.Empty(t, stderr)
	id := watchedJob(t, stdout)
	require.Regexp(t, `\njob `+id+` health_check succeeded in \S+: tasks ok/failed/skipped/total 2/0/0/2\n`, stdout)
	require.Regexp(t, `(?m)^NODE\s+CHECK\s+STATUS\s+MESSAGE$`, stdout)
	for _, n := range []string{"web-1", "web-2"} {
		for _, c := range []string{"disk", "memory"} {
			require.Regexp(t, hostCheckRow(n, c), stdout, "a %s row for %s", c, n)
		}
	}
	require.NotContains(t, stdout, "\x1b[", "no colours when stdout is not a terminal")

	t.Run("json is the final job", func(t *testing.T) {
		code, stdout, stderr := runCtl(t, args(f.ctl(), "-o", "json", "health", "--node", "web-1")...)
		require.Equal(t, 0, code, stderr)
		var job forlockv1.Job
		require.NoError(t, protojson.Unmarshal([]byte(stdout), &job), stdout)
		require.Equal(t, forlockv1.JobState_JOB_STATE_SUCCEEDED, job.GetState())
		require.Len(t, job.GetTasks(), 1)
		require.NotEmpty(t, job.GetTasks()[0].GetDetails(), "the check lines")
	})

	t.Run("health-check is kept for scripts", func(t *testing.T) {
		code, stdout, stderr := runCtl(t, args(f.ctl(), "health-check", "--all")...)
		require.Equal(t, 0, code, stderr)
		require.Regexp(t, `(?m)^web-1\s+succeeded\s`, stdout, "the per-task table")
		require.Regexp(t, `(?m)^    disk (OK|WARN|UNKNOWN) `, stdout, "checks as detail lines")
	})
}

// criticalDisk is a health_check handler that reports its disk CRITICAL
// the way the built-in handler does: detail lines and a failed task.
var criticalDisk = agent.TaskHandlerFunc(func(context.Context, agent.TaskAssignment, func(*forlockv1.Progress)) (agent.TaskResult, error) {
	return agent.TaskResult{Details: []string{"disk CRITICAL 4% free (10.1 GiB of 252 GiB)", "memory OK 20% used (4.8 of 24.0 GiB)"}},
		errors.New("CRITICAL: disk 4% free (10.1 GiB of 252 GiB)")
})

func TestCtlHealthCriticalExitsNonZero(t *testing.T) {
	noEngine(t)
	f := newFleet(t, nil)
	token := f.joinToken(2)
	f.runAgent(agentOpts{name: "web-1", token: token})
	f.runAgent(agentOpts{name: "db-1", token: token, handlers: map[protocol.Kind]agent.TaskHandler{"health_check": criticalDisk}})
	f.waitOnline(2)

	tests := []struct {
		name   string
		target []string
		code   int
		stderr string
	}{
		{"one of two nodes", []string{"--all"}, 2, "partially failed: 1 of 2 tasks succeeded"},
		{"the only node", []string{"--node", "db-1"}, 1, "failed: none of its 1 tasks succeeded"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runCtl(t, args(f.ctl(), append([]string{"health"}, tt.target...)...)...)
			require.Equal(t, tt.code, code, "stderr: %s", stderr)
			id := watchedJob(t, stdout)
			require.Equal(t, "forlockctl: job "+id+" "+tt.stderr+"\n", stderr)
			require.Regexp(t, `(?m)^db-1\s+disk\s+CRITICAL\s+4% free \(10\.1 GiB of 252 GiB\)$`, stdout)
			require.Regexp(t, `(?m)^db-1\s+memory\s+OK\s+20% used`, stdout)
			require.NotRegexp(t, `(?m)^db-1\s+-\s+failed`, stdout, "the CRITICAL row says why; no extra task row")
		})
	}
}

// criticalRedis reports a structured CRITICAL check but does not fail its
// task: forlockctl must still exit non-zero.
var criticalRedis = agent.TaskHandlerFunc(func(context.Context, agent.TaskAssignment, func(*forlockv1.Progress)) (agent.TaskResult, error) {
	return agent.TaskResult{Message: "reported", Health: &forlockv1.HealthReport{
		CheckedAt: timestamppb.Now(),
		Checks: []*forlockv1.CheckResult{
			{Name: "disk", Status: forlockv1.CheckStatus_CHECK_STATUS_OK, Message: "63% free"},
			{Name: "redis", Status: forlockv1.CheckStatus_CHECK_STATUS_CRITICAL, Message: "connection refused"},
		},
		Containers: []*forlockv1.ContainerStatus{{Name: "forlock-redis", Service: "redis", State: "exited", Image: "registry.example/forlock/redis:7@sha256:00"}},
	}}, nil
})

func TestCtlHealthStructuredCriticalInASucceededTask(t *testing.T) {
	f := newFleet(t, nil)
	f.runAgent(agentOpts{name: "cache-1", token: f.joinToken(1), handlers: map[protocol.Kind]agent.TaskHandler{"health_check": criticalRedis}})
	f.waitOnline(1)

	code, stdout, stderr := runCtl(t, args(f.ctl(), "health", "--all")...)
	require.Equal(t, 1, code, "stderr: %s", stderr)
	id := watchedJob(t, stdout)
	require.Equal(t, "forlockctl: job "+id+": 1 of 1 nodes report CRITICAL checks\n", stderr)
	require.Regexp(t, `(?m)^cache-1\s+disk\s+OK\s+63% free$`, stdout)
	require.Regexp(t, `(?m)^cache-1\s+redis\s+CRITICAL\s+connection refused$`, stdout)
	require.Regexp(t, `(?m)^cache-1\s+forlock-redis\s+redis\s+exited\s+-\s+0\s+redis:7\s+-\s`, stdout, "the container table")
	got, _ := f.job(id)
	require.Equal(t, forlockv1.JobState_JOB_STATE_SUCCEEDED, got.GetState(), "the task itself succeeded")
}

func TestCtlHealthCached(t *testing.T) {
	f, _ := realFleet(t, "web-1", "web-2")
	reported := func() bool {
		for _, n := range []string{"web-1", "web-2"} {
			if len(f.node(n).GetHealth().GetChecks()) == 0 {
				return false
			}
		}
		return true
	}
	// Heartbeats come every 200 ms; give the agents ten of them.
	deadline := time.Now().Add(2 * time.Second)
	for !reported() && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}

	code, stdout, stderr := runCtl(t, args(f.ctl(), "health", "--all", "--cached")...)
	require.Equal(t, 0, code, "stderr: %s", stderr)
	require.Empty(t, stderr)
	require.NotContains(t, stdout, "health_check", "no job ran")
	require.Regexp(t, `(?m)^NODE\s+CHECK\s+STATUS\s+CHECKED\s+MESSAGE$`, stdout)

	code, stdout2, stderr := runCtl(t, args(f.ctl(), "-o", "json", "health", "--node", "web-2", "--cached")...)
	require.Equal(t, 0, code, stderr)
	var resp forlockv1.ListNodesResponse
	require.NoError(t, protojson.Unmarshal([]byte(stdout2), &resp), stdout2)
	require.Len(t, resp.GetNodes(), 1)
	require.Equal(t, "web-2", resp.GetNodes()[0].GetName())

	require.True(t, reported(), "both agents report their checks on their heartbeats")
	for _, n := range []string{"web-1", "web-2"} {
		for _, c := range []string{"disk", "memory"} {
			require.Regexp(t, `(?m)^`+n+`\s+`+c+`\s+(OK|WARN|UNKNOWN)\s+\d+s ago\s+\S`, stdout, "a %s row for %s with its age", c, n)
		}
	}
	require.NotEmpty(t, resp.GetNodes()[0].GetHealth().GetChecks())
}

func TestCtlStatus(t *testing.T) {
	f, agents := realFleet(t, "web-1", "web-2")
	version := f.node("web-1").GetAgentVersion()
	require.NotEmpty(t, version)

	code, stdout, stderr := runCtl(t, args(f.ctl(), "status")...)
	require.Equal(t, 0, code, stderr)
	require.Empty(t, stderr)
	require.Regexp(t, `^control plane \S+: data disk ok, \d+\.\d [KMGT]iB free \(reserve 64\.0 MiB\)\n2 nodes: 2 online, 0 unreachable, 0 offline; checks: \d+ critical, \d+ warn`, stdout,
		"the control plane's own state comes first")
	require.Regexp(t, `(?m)^NAME\s+STATE\s+CONNECTED\s+AGENT\s+FAILING\s+IMAGES\s+CERT\s+TLS$`, stdout)
	for _, n := range []string{"web-1", "web-2"} {
		// Agent certificates live 24 h here, so each is flagged (under 14 days).
		require.Regexp(t, `(?m)^`+n+`\s+online\s+yes\s+`+regexp.QuoteMeta(version)+`\s+\S+\s+\S+\s+2[34]h\s+-$`, stdout)
	}

	agents["web-2"].stop()
	f.waitState("web-2", forlockv1.NodeState_NODE_STATE_OFFLINE, 10*time.Second)
	code, stdout, stderr = runCtl(t, args(f.ctl(), "status")...)
	require.Equal(t, 0, code, stderr)
	require.Regexp(t, `(?m)^2 nodes: 1 online, 0 unreachable, 1 offline;`, stdout)
	require.Regexp(t, `(?m)^web-2\s+offline\s+no\s`, stdout)

	code, stdout, stderr = runCtl(t, args(f.ctl(), "-o", "json", "status")...)
	require.Equal(t, 0, code, stderr)
	var resp forlockv1.ListNodesResponse
	require.NoError(t, protojson.Unmarshal([]byte(stdout), &resp), stdout)
	require.Len(t, resp.GetNodes(), 2)
}

func TestCtlLogsErrors(t *testing.T) {
	f, agents := realFleet(t, "web-1")

	if !slices.Contains(f.node("web-1").GetCapabilities(), "logs.v1") {
		for _, cmd := range [][]string{{"logs"}, {"logs", "api", "nginx", "--node", "web-1", "--tail", "10"}} {
			code, stdout, stderr := runCtl(t, args(f.ctl(), cmd...)...)
			require.Equal(t, 1, code, stderr)
			require.Empty(t, stdout)
			require.Equal(t, "forlockctl: the agent on node web-1 cannot stream logs: upgrade it\n", stderr,
				"%v: the only node is used without --node", cmd)
		}
	}

	code, _, stderr := runCtl(t, args(f.ctl(), "logs", "mysql", "--node", "web-1")...)
	require.Equal(t, 64, code)
	require.Equal(t, "forlockctl: unknown service \"mysql\": use any of api, postgres, redis, nginx\n", stderr)

	code, _, stderr = runCtl(t, args(f.ctl(), "logs", "--node", "nope")...)
	require.Equal(t, 1, code)
	require.Equal(t, "forlockctl: node \"nope\" not found: see 'forlockctl nodes list'\n", stderr)

	agents["web-1"].stop()
	f.waitState("web-1", forlockv1.NodeState_NODE_STATE_OFFLINE, 10*time.Second)
	code, _, stderr = runCtl(t, args(f.ctl(), "logs", "--node", "web-1", "-f")...)
	require.Equal(t, 1, code)
	require.Equal(t, "forlockctl: node web-1 is not connected: its logs cannot be read now\n", stderr)

	f.runAgent(agentOpts{name: "web-2", token: f.joinToken(1)})
	f.waitState("web-2", forlockv1.NodeState_NODE_STATE_ONLINE, 10*time.Second)
	code, _, stderr = runCtl(t, args(f.ctl(), "logs")...)
	require.Equal(t, 64, code)
	require.True(t, strings.HasPrefix(stderr, "forlockctl: --node is required: the fleet has 2 nodes (web-1, web-2)"), stderr)
}
