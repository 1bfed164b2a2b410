package e2e

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/forlock/fleet/test/testenv"
)

// vaultState is what a restore must bring back: the stand-in API's checksum
// over every vault row (by query, not by count) and every Redis key with its
// value.
type vaultState struct {
	Rows  string
	Redis map[string]string
}

func (n *testNode) state(t *testing.T) vaultState {
	t.Helper()
	out, err := exec.Command("docker", "exec", n.name+"-api", "forlockapi", "summary").CombinedOutput()
	require.NoError(t, err, "%s", out)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rc := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + n.rdPort})
	defer func() { _ = rc.Close() }()
	keys, err := rc.Keys(ctx, "*").Result()
	require.NoError(t, err)
	sort.Strings(keys)
	st := vaultState{Rows: strings.TrimSpace(string(out)), Redis: map[string]string{}}
	for _, k := range keys {
		v, err := rc.Dump(ctx, k).Result() // serialized value: any type compares
		require.NoError(t, err)
		st.Redis[k] = v
	}
	return st
}

// damage changes rows and Redis keys.
func (n *testNode) damage(t *testing.T) {
	t.Helper()
	out, err := exec.Command("docker", "exec", "-u", "postgres", n.name+"-postgres", "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", "forlock",
		"-c", "DELETE FROM vault_items WHERE id % 4 = 0; UPDATE vault_items SET name = 'tampered' WHERE id % 7 = 0").CombinedOutput()
	require.NoError(t, err, "%s", out)
	rc := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + n.rdPort})
	defer func() { _ = rc.Close() }()
	ctx := context.Background()
	keys, err := rc.Keys(ctx, "*").Result()
	require.NoError(t, err)
	require.NotEmpty(t, keys)
	require.NoError(t, rc.Del(ctx, keys[:len(keys)/2]...).Err())
	require.NoError(t, rc.Set(ctx, "written-after-backup", "x", 0).Err())
}

// rows is the PostgreSQL part of the stand-in API's summary.
type rows struct {
	Items, Bytes int64
	Checksum     string
}

func rowsOf(t *testing.T, summary string) rows {
	t.Helper()
	var r rows
	require.NoError(t, json.Unmarshal([]byte(summary), &r), "%s", summary)
	return r
}

func running(t *testing.T, container string) bool {
	t.Helper()
	out, err := exec.Command("docker", "inspect", "-f", "{{.State.Running}}", container).Output()
	require.NoError(t, err)
	return strings.TrimSpace(string(out)) == "true"
}

type jsonArtifact struct {
	ID       string `json:"id"`
	Kind     string `json:"kind"`
	Location string `json:"location"`
	State    string `json:"state"`
}

func (c *cluster) restorePoints(node string) []struct {
	ID        string         `json:"id"`
	Artifacts []jsonArtifact `json:"artifacts"`
} {
	c.t.Helper()
	var resp struct {
		RestorePoints []struct {
			ID        string         `json:"id"`
			Artifacts []jsonArtifact `json:"artifacts"`
		} `json:"restorePoints"`
	}
	out := c.ctl("restore", "--list", "--node", node, "-o", "json")
	require.NoError(c.t, json.Unmarshal([]byte(out), &resp), "%s", out)
	return resp.RestorePoints
}

func TestBackupAndRestore(t *testing.T) {
	requireTestNodeImages(t)
	c := startCluster(t)
	backups := filepath.Join(t.TempDir(), "backups")
	compose := repoPath("deploy", "testnode")
	n1 := c.upTestNode("fl-bk-1", "--backup-dirs", backups, "--compose-dir", compose)

	out, err := exec.Command("docker", "exec", n1.name+"-api", "forlockapi", "load", "--mb", "50").CombinedOutput()
	require.NoError(t, err, "%s", out)
	before := n1.state(t)
	require.NotEmpty(t, before.Redis)

	res, err := c.ctlErr("backup", "--node", n1.name, "--dest", filepath.Join(backups, n1.name))
	require.NoError(t, err, "%s", res)
	rps := c.restorePoints(n1.name)
	require.Len(t, rps, 1)
	require.Len(t, rps[0].Artifacts, 3)
	for _, a := range rps[0].Artifacts {
		st, err := os.Stat(a.Location)
		require.NoError(t, err, "artifact %s", a.Kind)
		require.Equal(t, os.FileMode(0o600), st.Mode().Perm())
		require.Regexp(t, `/(postgres|redis|config)_\d{8}_\d{6}\.`, a.Location, "named as the guide names them")
	}

	t.Run("restore --latest brings back every row and key", func(t *testing.T) {
		n1.damage(t)
		require.NotEqual(t, before, n1.state(t))
		out, err := c.ctlErr("restore", "--latest", "--node", n1.name, "--yes")
		require.NoError(t, err, "%s", out)
		require.Equal(t, before, n1.state(t))
	})

	t.Run("a flipped byte is refused with nothing stopped or changed", func(t *testing.T) {
		var pg string
		for _, a := range rps[0].Artifacts {
			if a.Kind == "ARTIFACT_KIND_POSTGRES" {
				pg = a.Location
			}
		}
		data, err := os.ReadFile(pg)
		require.NoError(t, err)
		orig := append([]byte(nil), data...)
		data[len(data)/2] ^= 0x01
		require.NoError(t, os.WriteFile(pg, data, 0o600))
		n1.damage(t)
		damaged := n1.state(t)
		out, err := c.ctlErr("restore", "--latest", "--node", n1.name, "--yes")
		require.Error(t, err, "%s", out)
		require.Contains(t, out, "checksum")
		require.True(t, running(t, n1.name+"-api"), "the API was never stopped")
		require.Equal(t, damaged, n1.state(t), "nothing changed")
		require.NoError(t, os.WriteFile(pg, orig, 0o600))
	})

	t.Run("backups delete removes the files and restore --latest skips them", func(t *testing.T) {
		res, err := c.ctlErr("backup", "--node", n1.name, "--dest", filepath.Join(backups, n1.name), "--only", "redis")
		require.NoError(t, err, "%s", res)
		rps := c.restorePoints(n1.name)
		require.Len(t, rps, 2)
		newest := rps[0]
		require.Len(t, newest.Artifacts, 1)
		out, err := c.ctlErr("backups", "delete", "--restore-point", newest.ID, "--yes")
		require.NoError(t, err, "%s", out)
		_, statErr := os.Stat(newest.Artifacts[0].Location)
		require.True(t, os.IsNotExist(statErr), "the file is gone")
		rps = c.restorePoints(n1.name)
		require.Equal(t, "ARTIFACT_STATE_DELETED", rps[0].Artifacts[0].State)
		out, err = c.ctlErr("backups", "delete", newest.Artifacts[0].ID, "--yes")
		require.ErrorContains(t, err, "already deleted", "%s", out)

		// The newest restore point with a Redis artifact is the first one again.
		n1.damage(t)
		out, err = c.ctlErr("restore", "--latest", "--only", "redis", "--node", n1.name, "--yes")
		require.NoError(t, err, "%s", out)
		require.Equal(t, before.Redis, n1.state(t).Redis)
	})

	t.Run("agent killed mid-backup: interrupted, nothing cataloged, partial file removed at restart", func(t *testing.T) {
		dir := filepath.Join(backups, n1.name)
		id := strings.TrimSpace(c.ctl("backup", "--detach", "--node", n1.name, "--dest", dir, "--only", "postgres"))
		var partial string
		require.Eventually(t, func() bool {
			tmps, _ := filepath.Glob(filepath.Join(dir, n1.name, ".postgres_*.tmp-*"))
			if len(tmps) == 0 {
				tmps, _ = filepath.Glob(filepath.Join(dir, ".postgres_*.tmp-*"))
			}
			if len(tmps) > 0 {
				partial = tmps[0]
			}
			return partial != ""
		}, 60*time.Second, 5*time.Millisecond, "the backup writes its temporary file")
		n1.agent.kill(syscall.SIGKILL)
		require.FileExists(t, partial, "killed while writing")

		c.restartAgent(n1)
		j := c.waitJobEnd(id, 60*time.Second)
		require.Equal(t, "TASK_STATE_INTERRUPTED", j.Tasks[0].State)
		require.NoFileExists(t, partial, "the partial file is removed when the agent starts again")
		require.Len(t, c.restorePoints(n1.name), 2, "nothing cataloged")
	})

	t.Run("destination outside the allowed directories is refused", func(t *testing.T) {
		n := len(c.restorePoints(n1.name))
		out, err := c.ctlErr("backup", "--node", n1.name, "--dest", "/etc/forlock-evil")
		require.Error(t, err, "%s", out)
		_, statErr := os.Stat("/etc/forlock-evil")
		require.True(t, os.IsNotExist(statErr))
		require.Len(t, c.restorePoints(n1.name), n, "nothing cataloged")
	})
}

// TestBackupToS3AndRestoreOnAnotherNode backs a node up to a real
// S3-compatible server and restores the backup onto a second node: disaster
// recovery.
func TestBackupToS3AndRestoreOnAnotherNode(t *testing.T) {
	requireTestNodeImages(t)
	endpoint := startS3(t)
	c := startCluster(t)
	keyDir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(keyDir, "access"), []byte("forlock-test\n"), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(keyDir, "secret"), []byte("forlock-test-secret\n"), 0o600))
	s3 := []string{"--s3-endpoint", endpoint, "--s3-access-key-file", filepath.Join(keyDir, "access"),
		"--s3-secret-key-file", filepath.Join(keyDir, "secret"), "--compose-dir", repoPath("deploy", "testnode"),
		"--backup-dirs", filepath.Join(t.TempDir(), "local")}
	src := c.upTestNode("fl-s3-src", s3...)
	dst := c.upTestNode("fl-s3-dst", s3...)

	out, err := exec.Command("docker", "exec", src.name+"-api", "forlockapi", "load", "--mb", "5").CombinedOutput()
	require.NoError(t, err, "%s", out)
	want := src.state(t)
	require.NotEqual(t, want, dst.state(t))

	// An operator backs up and may not restore; an admin identity (not
	// the bootstrap token) restores.
	operator := c.identity("backup-bot", "operator")
	oncall := c.identity("oncall", "admin")
	res, err := c.ctlAs(operator, "backup", "--node", src.name, "--s3", "fleet-backups", "--s3-prefix", "e2e")
	require.NoError(t, err, "%s", res)
	rps := c.restorePoints(src.name)
	require.Len(t, rps, 1)
	for _, a := range rps[0].Artifacts {
		require.True(t, strings.HasPrefix(a.Location, "s3://fleet-backups/e2e/"), a.Location)
	}

	_, err = c.ctlAs(operator, "restore", "--latest", "--from-node", src.name, "--node", dst.name, "--yes")
	require.ErrorContains(t, err, "backup-bot (role operator) lacks restore.run")
	require.NotEqual(t, want, dst.state(t), "the refused restore changed nothing")
	res, err = c.ctlAs(oncall, "--reason", "DR drill", "restore", "--latest", "--from-node", src.name, "--node", dst.name, "--yes")
	require.NoError(t, err, "%s", res)
	require.Equal(t, want, dst.state(t), "the second node holds the first node's data")
	restores := c.auditRecords("--actor", "oncall", "--method", "SubmitJob")
	require.Len(t, restores, 1)
	require.Equal(t, "DR drill", restores[0].Reason)
	require.Contains(t, restores[0].Summary, "restore={")

	t.Run("a missing object is refused", func(t *testing.T) {
		mc, err := minio.New(endpoint, &minio.Options{Creds: credentials.NewStaticV4("forlock-test", "forlock-test-secret", ""), Secure: false})
		require.NoError(t, err)
		for _, a := range rps[0].Artifacts {
			if a.Kind == "ARTIFACT_KIND_REDIS" {
				key := strings.TrimPrefix(a.Location, "s3://fleet-backups/")
				require.NoError(t, mc.RemoveObject(context.Background(), "fleet-backups", key, minio.RemoveObjectOptions{}))
			}
		}
		dst.damage(t)
		damaged := dst.state(t)
		out, err := c.ctlErr("restore", "--latest", "--from-node", src.name, "--node", dst.name, "--yes")
		require.Error(t, err, "%s", out)
		require.True(t, running(t, dst.name+"-api"))
		require.Equal(t, damaged, dst.state(t))
	})

	t.Run("a physical backup over S3 restores onto the other node", func(t *testing.T) {
		dst.damage(t)
		res, err := c.ctlErr("backup", "--node", src.name, "--only", "postgres", "--pg-format", "physical", "--s3", "fleet-backups", "--s3-prefix", "e2e")
		require.NoError(t, err, "%s", res)
		require.Regexp(t, `postgres_\d{8}_\d{6}\.base\.tar\.zst\.enc`, res)
		require.Regexp(t, `"postgresFormat":\s*"POSTGRES_FORMAT_PHYSICAL"`, c.ctl("restore", "--list", "--node", src.name, "-o", "json"))
		res, err = c.ctlErr("restore", "--latest", "--only", "postgres", "--from-node", src.name, "--node", dst.name, "--yes")
		require.NoError(t, err, "%s", res)
		// Only PostgreSQL was restored: compare the rows, not the Redis
		// sessions the summary also counts.
		require.Equal(t, rowsOf(t, want.Rows), rowsOf(t, dst.state(t).Rows), "the second node holds the first node's rows")
		require.True(t, running(t, dst.name+"-api"))
	})
}

// startS3 runs a versitygw (deploy/s3) for the test with a bucket
// "fleet-backups", and returns its host:port.
func startS3(t *testing.T) string {
	t.Helper()
	testenv.RequireServerBinary(t, "s3")
	dir := t.TempDir()
	out, err := exec.Command("bash", repoPath("deploy", "s3", "start.sh"), dir, port(t)).Output()
	require.NoError(t, err)
	t.Cleanup(func() { _ = exec.Command("bash", repoPath("deploy", "s3", "stop.sh"), dir).Run() })
	endpoint := strings.TrimSpace(string(out))
	mc, err := minio.New(endpoint, &minio.Options{Creds: credentials.NewStaticV4("forlock-test", "forlock-test-secret", ""), Secure: false})
	require.NoError(t, err)
	require.NoError(t, mc.MakeBucket(context.Background(), "fleet-backups", minio.MakeBucketOptions{}))
	return endpoint
}

// TestScheduledBackup runs a control plane whose config schedules a config
// backup every 10 seconds: the real agent of a test node makes them, and
// each restore point comes from a job of the schedule, one per fire time.
func TestScheduledBackup(t *testing.T) {
	requireTestNodeImages(t)
	cfg := filepath.Join(t.TempDir(), "controlplane.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte("version: 1\nbackup_schedules:\n  - name: e2e-config\n    cron: \"@every 10s\"\n    only: [config]\n    keep: 24h\n"), 0o600))
	c := startCluster(t, "--config", cfg)
	backups := filepath.Join(t.TempDir(), "backups")
	n := c.upTestNode("fl-sched", "--backup-dirs", backups, "--compose-dir", repoPath("deploy", "testnode"))

	var rps int
	require.Eventually(t, func() bool {
		rps = len(c.restorePoints(n.name))
		return rps >= 2
	}, 90*time.Second, time.Second, "two scheduled restore points")
	var list struct {
		Jobs []struct {
			IdempotencyKey string `json:"idempotencyKey"`
			State          string `json:"state"`
		} `json:"jobs"`
	}
	out := c.ctl("jobs", "list", "--kind", "backup", "-o", "json")
	require.NoError(t, json.Unmarshal([]byte(out), &list), "%s", out)
	keys := map[string]bool{}
	succeeded := 0
	for _, j := range list.Jobs {
		require.Regexp(t, `^backup-schedule/e2e-config/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$`, j.IdempotencyKey)
		require.False(t, keys[j.IdempotencyKey], "one job per fire time")
		keys[j.IdempotencyKey] = true
		if j.State == "JOB_STATE_SUCCEEDED" {
			succeeded++
		}
	}
	require.GreaterOrEqual(t, succeeded, rps, "every restore point from a scheduled job")
	for _, rp := range c.restorePoints(n.name) {
		require.Len(t, rp.Artifacts, 1)
		require.Equal(t, "ARTIFACT_KIND_CONFIG", rp.Artifacts[0].Kind)
		_, err := os.Stat(rp.Artifacts[0].Location)
		require.NoError(t, err)
	}
}
