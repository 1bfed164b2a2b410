package e2e

import (
	"crypto/tls"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/forlock/fleet/test/testenv"
)

// The e2e registry's credentials (deploy/registry's start.sh and
// push-images.sh read them from the environment).
const (
	upRegistryUser     = "forlock-h6-test"
	upRegistryPassword = "forlock-h6-test-secret"
)

// e2eRegistry is deploy/registry's registry holding the stand-in API's
// releases v1 (also :latest), v2 and a broken v3.
type e2eRegistry struct {
	dir, port, endpoint string
	env                 []string
}

func (r *e2eRegistry) repo() string { return r.endpoint + "/forlock/api" }

// startE2ERegistry starts the registry in a temporary directory on a free
// port and pushes the releases once. The local copies of v2 and v3 are
// removed, so upgrades pull them.
func startE2ERegistry(t *testing.T) *e2eRegistry {
	t.Helper()
	testenv.RequireServerBinary(t, "registry")
	r := &e2eRegistry{dir: t.TempDir(), port: port(t)}
	r.env = append(os.Environ(), "FORLOCK_REGISTRY_USER="+upRegistryUser, "FORLOCK_REGISTRY_PASSWORD="+upRegistryPassword)
	r.start(t)
	t.Cleanup(func() {
		for _, tag := range []string{"v1", "v2", "v3", "latest"} {
			_ = exec.Command("docker", "rmi", r.repo()+":"+tag).Run()
		}
	})
	t.Cleanup(func() { _ = exec.Command(repoPath("deploy", "registry", "stop.sh"), r.dir).Run() })

	push := exec.Command(repoPath("deploy", "registry", "push-images.sh"), r.endpoint)
	push.Env = r.env
	out, err := push.CombinedOutput()
	require.NoError(t, err, "push-images.sh: %s", out)
	docker(t, "rmi", r.repo()+":v2", r.repo()+":v3")
	return r
}

func (r *e2eRegistry) start(t *testing.T) {
	t.Helper()
	cmd := exec.Command(repoPath("deploy", "registry", "start.sh"), r.dir, r.port)
	cmd.Env = r.env
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "start.sh: %s", stderr.String())
	r.endpoint = strings.TrimSpace(string(out))
}

func (r *e2eRegistry) stop(t *testing.T) {
	t.Helper()
	out, err := exec.Command(repoPath("deploy", "registry", "stop.sh"), r.dir).CombinedOutput()
	require.NoError(t, err, "stop.sh: %s", out)
}

type jsonServiceImage struct {
	Service    string `json:"service"`
	Image      string `json:"image"`
	ImageID    string `json:"imageId"`
	RepoDigest string `json:"repoDigest"`
}

type jsonRelease struct {
	ID       string             `json:"id"`
	JobID    string             `json:"jobId"`
	Services []jsonServiceImage `json:"services"`
}

func (r jsonRelease) image(service string) string {
	for _, s := range r.Services {
		if s.Service == service {
			return s.Image
		}
	}
	return ""
}

type jsonUpgradeTask struct {
	NodeName string `json:"nodeName"`
	State    string `json:"state"`
	Message  string `json:"message"`
	Upgrade  struct {
		Before               jsonRelease `json:"before"`
		After                jsonRelease `json:"after"`
		RolledBack           bool        `json:"rolledBack"`
		Reason               string      `json:"reason"`
		BackupRestorePointID string      `json:"backupRestorePointId"`
		APIUnavailable       string      `json:"apiUnavailable"`
	} `json:"upgrade"`
}

type jsonUpgradeJob struct {
	ID    string            `json:"id"`
	State string            `json:"state"`
	Tasks []jsonUpgradeTask `json:"tasks"`
}

func (j jsonUpgradeJob) task(t *testing.T, node string) jsonUpgradeTask {
	t.Helper()
	for _, task := range j.Tasks {
		if task.NodeName == node {
			return task
		}
	}
	require.FailNow(t, "no task", "job %s has no task for %s: %+v", j.ID, node, j.Tasks)
	return jsonUpgradeTask{}
}

// upgrade runs forlockctl upgrade ARGS -o json and returns the final job,
// the error (non-nil for a non-zero exit) and how long it took.
func (c *cluster) upgrade(args ...string) (jsonUpgradeJob, time.Duration, error) {
	c.t.Helper()
	start := time.Now()
	out, err := c.ctlErr(append(append([]string{"upgrade"}, args...), "-o", "json")...)
	took := time.Since(start)
	var j jsonUpgradeJob
	require.NoError(c.t, json.Unmarshal([]byte(out), &j), "forlockctl upgrade %v: %v: %s", args, err, out)
	require.NotEmpty(c.t, j.ID, "%s", out)
	return j, took, err
}

// nodeReleases is the node's current release and history, as
// forlockctl nodes get -o json shows them.
func (c *cluster) nodeReleases(node string) (jsonRelease, []jsonRelease) {
	c.t.Helper()
	var resp struct {
		Node struct {
			Release        jsonRelease   `json:"release"`
			ReleaseHistory []jsonRelease `json:"releaseHistory"`
		} `json:"node"`
	}
	out := c.ctl("nodes", "get", node, "-o", "json")
	require.NoError(c.t, json.Unmarshal([]byte(out), &resp), "%s", out)
	return resp.Node.Release, resp.Node.ReleaseHistory
}

var insecureHTTP = &http.Client{
	Timeout: 2 * time.Second,
	Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // the test node's self-signed certificate
		DisableKeepAlives: true,
	},
}

// apiVersion is the version the node's API reports on /api/v1/health,
// through nginx.
func (n *testNode) apiVersion() (string, error) {
	resp, err := insecureHTTP.Get("https://127.0.0.1:" + n.httpsPort + "/api/v1/health")
	if err != nil {
		return "", err
	}
	defer func() { _ = resp.Body.Close() }()
	var body struct {
		Version string `json:"version"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return body.Version, &httpStatusError{resp.StatusCode}
	}
	return body.Version, nil
}

type httpStatusError struct{ code int }

func (e *httpStatusError) Error() string { return http.StatusText(e.code) }

// requireAPIVersion waits briefly (nginx may still hold the old address
// for a moment) until the node's API is healthy and reports want.
func requireAPIVersion(t *testing.T, n *testNode, want string) {
	t.Helper()
	var got string
	var err error
	require.Eventually(t, func() bool {
		got, err = n.apiVersion()
		return err == nil && got == want
	}, 15*time.Second, 200*time.Millisecond, "API of %s: want healthy %s, got %q (%v)", n.name, want, got, err)
}

func apiContainerID(t *testing.T, n *testNode) string {
	t.Helper()
	out, err := exec.Command("docker", "inspect", "-f", "{{.Id}}", n.name+"-api").CombinedOutput()
	require.NoError(t, err, "%s", out)
	return strings.TrimSpace(string(out))
}

// TestUpgrades runs issue 6's cases through the real binaries, in order,
// on test nodes whose API comes from a real registry: v1 -> v2 with its
// pre-upgrade backup, a broken v3 rolled back, --rollback to v1, a fleet of
// three with a broken canary, and the registry down.
func TestUpgrades(t *testing.T) {
	requireTestNodeImages(t)
	reg := startE2ERegistry(t)
	c := startCluster(t)

	pw := filepath.Join(t.TempDir(), "registry-password")
	require.NoError(t, os.WriteFile(pw, []byte(upRegistryPassword+"\n"), 0o600))
	backups := filepath.Join(t.TempDir(), "backups")
	env := []string{"API_REPO=" + reg.repo()}
	var nodes []*testNode
	for _, name := range []string{"fl-h6up-a", "fl-h6up-b", "fl-h6up-c"} {
		n := c.upTestNodeEnv(name, env, "--backup-dirs", backups, "--compose-dir", repoPath("deploy", "testnode"),
			"--registry-username", upRegistryUser, "--registry-password-file", pw)
		t.Cleanup(func() { // containers an interrupted upgrade may leave
			for _, svc := range []string{"postgres", "redis", "api", "nginx"} {
				_ = exec.Command("docker", "rm", "-f", n.name+"-"+svc+".forlock-prev").Run()
			}
		})
		nodes = append(nodes, n)
	}
	a, b, cc := nodes[0], nodes[1], nodes[2]
	requireAPIVersion(t, a, "v1")

	var v1v2 jsonUpgradeTask
	require.True(t, t.Run("v1 to v2 with a pre-upgrade backup", func(t *testing.T) {
		j, took, err := c.upgrade("api", "--to", "v2", "--node", a.name)
		require.NoError(t, err)
		require.Equal(t, "JOB_STATE_SUCCEEDED", j.State)
		v1v2 = j.task(t, a.name)
		require.Equal(t, "TASK_STATE_SUCCEEDED", v1v2.State, v1v2.Message)
		require.False(t, v1v2.Upgrade.RolledBack)
		require.Equal(t, reg.repo()+":latest", v1v2.Upgrade.Before.image("api"))
		require.Equal(t, reg.repo()+":v2", v1v2.Upgrade.After.image("api"))
		requireAPIVersion(t, a, "v2")
		t.Logf("v1 -> v2 (with backup) took %s", took.Round(time.Millisecond))

		var cur jsonRelease
		var hist []jsonRelease
		assert.Eventually(t, func() bool {
			cur, hist = c.nodeReleases(a.name)
			return cur.ID == v1v2.Upgrade.After.ID && len(hist) > 0
		}, 10*time.Second, 200*time.Millisecond, "the node's release and history")
		require.Equal(t, v1v2.Upgrade.After.ID, cur.ID)
		require.NotEmpty(t, hist, "the release before the upgrade is in the history")
		require.Equal(t, reg.repo()+":v2", cur.image("api"))
		require.Equal(t, j.ID, cur.JobID)
		require.Equal(t, v1v2.Upgrade.Before.ID, hist[0].ID)
		require.Equal(t, reg.repo()+":latest", hist[0].image("api"))
		for _, s := range cur.Services {
			if s.Service == "api" {
				require.True(t, strings.HasPrefix(s.RepoDigest, reg.repo()+"@sha256:"), "digest recorded: %+v", s)
			}
		}

		// The pre-upgrade backup is cataloged and linked to the job.
		require.NotEmpty(t, v1v2.Upgrade.BackupRestorePointID)
		var list struct {
			RestorePoints []struct {
				ID    string `json:"id"`
				JobID string `json:"jobId"`
			} `json:"restorePoints"`
		}
		out := c.ctl("restore", "--list", "--node", a.name, "-o", "json")
		require.NoError(t, json.Unmarshal([]byte(out), &list), "%s", out)
		found := false
		for _, rp := range list.RestorePoints {
			if rp.JobID == j.ID {
				found = true
				require.Equal(t, v1v2.Upgrade.BackupRestorePointID, rp.ID)
			}
		}
		require.True(t, found, "no restore point of job %s: %s", j.ID, out)

		table := c.ctl("nodes", "get", a.name)
		require.Contains(t, table, "Release: "+cur.ID[:12])
		require.Contains(t, table, reg.repo()+":v2")
		require.Contains(t, table, "History:")
	}), "later steps need this one")

	require.True(t, t.Run("broken v3 is rolled back to v2", func(t *testing.T) {
		before := apiContainerID(t, a)
		const timeout = 20 * time.Second
		j, took, err := c.upgrade("api", "--to", "v3", "--node", a.name, "--health-timeout", timeout.String())
		require.Error(t, err, "a rolled-back upgrade exits non-zero")
		task := j.task(t, a.name)
		require.Equal(t, "TASK_STATE_ROLLED_BACK", task.State, task.Message)
		require.True(t, task.Upgrade.RolledBack)
		require.NotEmpty(t, task.Upgrade.Reason)
		require.Equal(t, reg.repo()+":v2", task.Upgrade.After.image("api"))
		t.Logf("v2 -> v3: rolled back after %s (health timeout %s, backup included): %s", took.Round(time.Millisecond), timeout, task.Upgrade.Reason)
		// The backup, the pull, the health timeout, then the restore.
		require.Less(t, took, timeout+60*time.Second)
		requireAPIVersion(t, a, "v2")
		require.Equal(t, before, apiContainerID(t, a), "the same v2 container is back")
	}), "later steps need this one")

	require.True(t, t.Run("rollback returns to v1", func(t *testing.T) {
		j, took, err := c.upgrade("--rollback", "--node", a.name)
		require.NoError(t, err)
		task := j.task(t, a.name)
		require.Equal(t, "TASK_STATE_SUCCEEDED", task.State, task.Message)
		require.Equal(t, reg.repo()+":latest", task.Upgrade.After.image("api"))
		require.Equal(t, v1v2.Upgrade.Before.ID, task.Upgrade.After.ID, "the release before v2")
		requireAPIVersion(t, a, "v1")
		t.Logf("rollback to v1 took %s", took.Round(time.Millisecond))
	}), "later steps need this one")

	require.True(t, t.Run("fleet of three: a broken canary halts the rest", func(t *testing.T) {
		ids := map[string]string{b.name: apiContainerID(t, b), cc.name: apiContainerID(t, cc)}
		j, took, err := c.upgrade("api", "--to", "v3", "--all", "--canary", "1", "--skip-backup", "--health-timeout", "15s")
		require.Error(t, err)
		require.Len(t, j.Tasks, 3)
		canary := j.task(t, a.name) // the first by name
		require.Equal(t, "TASK_STATE_ROLLED_BACK", canary.State, canary.Message)
		for _, n := range []*testNode{b, cc} {
			task := j.task(t, n.name)
			require.Equal(t, "TASK_STATE_SKIPPED", task.State, "%s: %s", n.name, task.Message)
			require.Equal(t, ids[n.name], apiContainerID(t, n), "%s untouched", n.name)
			requireAPIVersion(t, n, "v1")
		}
		requireAPIVersion(t, a, "v1")
		t.Logf("fleet rollout halted by the canary after %s", took.Round(time.Millisecond))
	}), "later steps need this one")

	t.Run("registry down: a clear error and nothing changed", func(t *testing.T) {
		before := apiContainerID(t, a)
		reg.stop(t)
		defer reg.start(t)
		j, _, err := c.upgrade("api", "--to", "v2", "--node", a.name, "--skip-backup")
		require.Error(t, err)
		task := j.task(t, a.name)
		require.Equal(t, "TASK_STATE_FAILED", task.State)
		require.Contains(t, task.Message, reg.endpoint, "the error names the registry")
		require.NotContains(t, task.Message, upRegistryPassword)
		require.NotContains(t, err.Error(), upRegistryPassword)
		t.Logf("registry down: %s", task.Message)
		require.Equal(t, before, apiContainerID(t, a))
		requireAPIVersion(t, a, "v1")
	})

	t.Run("API unavailability during v1 to v2", func(t *testing.T) {
		require.NotEmpty(t, v1v2.Upgrade.APIUnavailable, "the agent measures it")
		d, err := time.ParseDuration(v1v2.Upgrade.APIUnavailable)
		require.NoError(t, err)
		t.Logf("API unavailable during the v1 -> v2 upgrade (agent polls /api/v1/health every 100 ms): %s", d)
	})
}
