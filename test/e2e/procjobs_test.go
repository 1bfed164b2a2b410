package e2e

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

type jsonJob struct {
	ID    string `json:"id"`
	State string `json:"state"`
	Tasks []struct {
		ID       string `json:"id"`
		NodeName string `json:"nodeName"`
		State    string `json:"state"`
		Message  string `json:"message"`
	} `json:"tasks"`
}

func (c *cluster) job(id string) jsonJob {
	c.t.Helper()
	var resp struct {
		Job jsonJob `json:"job"`
	}
	out := c.ctl("jobs", "get", id, "-o", "json")
	require.NoError(c.t, json.Unmarshal([]byte(out), &resp), "%s", out)
	if resp.Job.ID == "" { // the CLI may print the Job itself
		require.NoError(c.t, json.Unmarshal([]byte(out), &resp.Job))
	}
	return resp.Job
}

func (c *cluster) waitJobEnd(id string, within time.Duration) jsonJob {
	c.t.Helper()
	var j jsonJob
	require.Eventually(c.t, func() bool {
		out, err := c.ctlErr("jobs", "get", id, "-o", "json")
		if err != nil {
			return false // the control plane may be restarting
		}
		_ = out
		j = c.job(id)
		return j.State != "" && j.State != "JOB_STATE_RUNNING"
	}, within, 200*time.Millisecond, "job %s never ended", id)
	return j
}

func (c *cluster) startTestAgent(name, stateDir string, delay time.Duration, extra ...string) *proc {
	c.t.Helper()
	args := append([]string{"--control-plane", c.addr, "--ca-file", filepath.Join(c.dataDir, "ca.crt"),
		"--state-dir", stateDir, "--name", name, "--log-format", "text"}, extra...)
	return startBin(c.t, c.binaries(), []string{"FORLOCK_TEST_TASK_DELAY=" + delay.String()}, "testagent", args...)
}

var taskStarted = regexp.MustCompile(`msg="task started".*task_id=(\S+)`)

// startedTasks counts "task started" log lines per task ID across agents.
func startedTasks(agents ...*proc) map[string]int {
	out := map[string]int{}
	for _, a := range agents {
		for _, m := range taskStarted.FindAllStringSubmatch(a.out.String(), -1) {
			out[m[1]]++
		}
	}
	return out
}

func (c *cluster) submitDetached(args ...string) string {
	c.t.Helper()
	out := strings.TrimSpace(c.ctl(append([]string{"health-check", "--detach"}, args...)...))
	require.Regexp(c.t, `^[0-9a-f]{24}$`, out, "--detach prints the job ID")
	return out
}

func TestJobSurvivesControlPlaneKill(t *testing.T) {
	if testing.Short() {
		t.Skip("real processes")
	}
	c := startCluster(t)
	tokenFile := c.tokenFile("--max-uses", "20")
	agents := make([]*proc, 20)
	for i := range agents {
		agents[i] = c.startTestAgent(fmt.Sprintf("node-%02d", i), filepath.Join(t.TempDir(), "a"), 700*time.Millisecond, "--join-token-file", tokenFile)
	}
	require.Eventually(t, func() bool {
		n := 0
		for _, node := range c.nodes() {
			if node.State == "NODE_STATE_ONLINE" {
				n++
			}
		}
		return n == 20
	}, 60*time.Second, 100*time.Millisecond)

	id := c.submitDetached("--all", "--max-parallel", "5")
	require.Eventually(t, func() bool { return len(startedTasks(agents...)) >= 7 }, 30*time.Second, 20*time.Millisecond)
	c.cp.kill(syscall.SIGKILL)
	c.startControlPlane()

	j := c.waitJobEnd(id, 90*time.Second)
	require.Equal(t, "JOB_STATE_SUCCEEDED", j.State, "%+v", j.Tasks)
	require.Len(t, j.Tasks, 20, "no task lost")
	started := startedTasks(agents...)
	require.Len(t, started, 20, "every task ran")
	for task, n := range started {
		require.Equal(t, 1, n, "task %s executed %d times", task, n)
	}
}

func TestAgentKilledMidTaskIsInterrupted(t *testing.T) {
	if testing.Short() {
		t.Skip("real processes")
	}
	c := startCluster(t)
	stateDir := filepath.Join(t.TempDir(), "a")
	a := c.startTestAgent("victim", stateDir, time.Hour, "--join-token-file", c.tokenFile())
	c.waitOnline("victim")
	id := c.submitDetached("--node", "victim")
	require.Eventually(t, func() bool {
		j := c.job(id)
		return len(j.Tasks) == 1 && j.Tasks[0].State == "TASK_STATE_RUNNING"
	}, 30*time.Second, 50*time.Millisecond)
	a.kill(syscall.SIGKILL)

	b := c.startTestAgent("victim", stateDir, time.Hour)
	j := c.waitJobEnd(id, 60*time.Second)
	require.Equal(t, "TASK_STATE_INTERRUPTED", j.Tasks[0].State)
	require.Equal(t, "JOB_STATE_FAILED", j.State)
	require.Equal(t, map[string]int{j.Tasks[0].ID: 1}, startedTasks(a, b), "an interrupted task is never re-run")
}
