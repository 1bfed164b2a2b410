package e2e

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// psql runs one statement as postgres in the node's database and returns
// its unaligned output.
func (n *testNode) psql(t *testing.T, sql string) string {
	t.Helper()
	out, err := exec.Command("docker", "exec", "-u", "postgres", n.name+"-postgres", "psql", "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", "forlock", "-c", sql).CombinedOutput()
	require.NoError(t, err, "%s: %s", sql, out)
	return strings.TrimSpace(string(out))
}

// TestWALGapHealsEndToEnd: the archive's replication slot is lost while the
// agent is away and the server moves on, so the archived WAL has a hole.
// The node's wal_archive check turns CRITICAL naming where the contiguous
// WAL ends, the control plane submits a physical base backup by itself
// (audited, keyed wal-heal/...), the agent takes it, and the check is OK
// again: point-in-time restore works from the new base on.
func TestWALGapHealsEndToEnd(t *testing.T) {
	requireTestNodeImages(t)
	start := time.Now()
	c := startCluster(t)
	backups := filepath.Join(t.TempDir(), "backups")
	n := c.upTestNode("fl-walgap", "--backup-dirs", backups, "--compose-dir", repoPath("deploy", "testnode"), "--wal-archive=true", "--log-level", "debug")

	walCheck := func() jsonCheck { return c.cachedChecks(n.name)["wal_archive"] }
	require.Eventually(t, func() bool { return walCheck().Status == "CHECK_STATUS_OK" }, 2*time.Minute, 500*time.Millisecond,
		"the archive streams: %+v", walCheck())
	// Archived WAL before the hole: a segment shipped whole.
	n.insertRows(t, "before-gap", 10)
	n.psql(t, "SELECT pg_switch_wal()")
	require.Eventually(t, func() bool { return walBytes(t, c, n.name) > 0 }, 2*time.Minute, time.Second, "WAL archived before the gap")
	// A base backup the archived WAL continues: without one there is nothing
	// for the WAL to be contiguous with, hence no gap to report.
	out, err := c.ctlErr("backup", "--node", n.name, "--only", "postgres", "--pg-format", "physical")
	require.NoError(t, err, "%s", out)

	n.agent.kill(syscall.SIGTERM)
	n.psql(t, "SELECT pg_drop_replication_slot('forlock_archive')")
	for range 3 { // WAL the archive never sees
		n.insertRows(t, "in-gap", 10)
		n.psql(t, "SELECT pg_switch_wal()")
	}
	n.psql(t, "CHECKPOINT")
	c.restartAgent(n)

	require.Eventually(t, func() bool { return walCheck().Status == "CHECK_STATUS_CRITICAL" }, 2*time.Minute, 500*time.Millisecond,
		"the gap is reported: %+v", walCheck())
	require.Contains(t, walCheck().Message, "WAL gap after")
	status, _ := c.ctlErr("status") // exits non-zero with a CRITICAL node
	require.Contains(t, status, "wal_archive(CRITICAL)", "status names the failing check")
	t.Logf("gap reported at %s: %s", time.Since(start).Round(time.Second), walCheck().Message)

	var heal struct {
		IdempotencyKey string `json:"idempotencyKey"`
		State          string `json:"state"`
	}
	require.Eventually(t, func() bool {
		var list struct {
			Jobs []struct {
				IdempotencyKey string `json:"idempotencyKey"`
				State          string `json:"state"`
			} `json:"jobs"`
		}
		out := c.ctl("jobs", "list", "--kind", "backup", "-o", "json")
		require.NoError(t, json.Unmarshal([]byte(out), &list), "%s", out)
		for _, j := range list.Jobs {
			if strings.HasPrefix(j.IdempotencyKey, "wal-heal/") {
				heal = j
				return j.State == "JOB_STATE_SUCCEEDED"
			}
		}
		return false
	}, 3*time.Minute, time.Second, "the control plane's healing base backup succeeds: %+v", heal)
	require.Eventually(t, func() bool { return walCheck().Status == "CHECK_STATUS_OK" }, 2*time.Minute, 500*time.Millisecond,
		"the gap heals with the base backup: %+v", walCheck())

	rps := c.restorePoints(n.name)
	require.Len(t, rps, 2, "the first base backup and the healing one")
	audit := c.ctl("audit", "list", "-o", "json")
	require.Contains(t, audit, "wal/heal", "the healing backup is audited")
	t.Logf("healed at %s", time.Since(start).Round(time.Second))
}

// walBytes is the stored size of the node's archived WAL in restore --list.
func walBytes(t *testing.T, c *cluster, node string) int64 {
	t.Helper()
	var resp struct {
		Windows []struct {
			NodeName string `json:"nodeName"`
			WalBytes int64  `json:"walBytes,string"`
		} `json:"windows"`
	}
	out := c.ctl("restore", "--list", "--node", node, "-o", "json")
	require.NoError(t, json.Unmarshal([]byte(out), &resp), "%s", out)
	for _, w := range resp.Windows {
		if w.NodeName == node {
			return w.WalBytes
		}
	}
	return 0
}
