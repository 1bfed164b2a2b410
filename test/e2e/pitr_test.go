package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/forlock/fleet/internal/artifact"
	"github.com/forlock/fleet/internal/keys"
	"github.com/forlock/fleet/internal/pglsn"
)

// window is one node's recovery window in `restore --list -o json`.
type window struct {
	NodeName string    `json:"nodeName"`
	NodeID   string    `json:"nodeId"`
	Earliest time.Time `json:"earliest"`
	Latest   time.Time `json:"latest"`
	Timeline uint32    `json:"timeline"`
}

func (c *cluster) window(node string) (window, bool) {
	c.t.Helper()
	var resp struct {
		Windows []window `json:"windows"`
	}
	out := c.ctl("restore", "--list", "--node", node, "-o", "json")
	require.NoError(c.t, json.Unmarshal([]byte(out), &resp), "%s", out)
	for _, w := range resp.Windows {
		if w.NodeName == node {
			return w, true
		}
	}
	return window{}, false
}

// insertRows writes n vault rows tagged with label in one transaction.
func (n *testNode) insertRows(t *testing.T, label string, count int) {
	t.Helper()
	sql := fmt.Sprintf("INSERT INTO vault_items (owner, name, ciphertext) SELECT 'pitr', '%s-' || g, '\\x00'::bytea FROM generate_series(1, %d) g", label, count)
	out, err := exec.Command("docker", "exec", "-u", "postgres", n.name+"-postgres", "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", "forlock", "-c", sql).CombinedOutput()
	require.NoError(t, err, "%s", out)
}

// containerStamps are the IDs and start times of a node's containers.
func (n *testNode) containerStamps(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	for _, s := range []string{"api", "postgres", "redis", "nginx"} {
		out, err := exec.Command("docker", "inspect", "-f", "{{.Id}} {{.State.StartedAt}} {{.State.Running}}", n.name+"-"+s).CombinedOutput()
		require.NoError(t, err, "%s", out)
		b.WriteString(s + " " + strings.TrimSpace(string(out)) + "\n")
	}
	return b.String()
}

// segmentName is the WAL file name of the segment holding lsn ("X/Y") on
// timeline tl, or of a later one (after segments past it).
func segmentName(t *testing.T, tl uint32, lsn string, after uint64) string {
	t.Helper()
	l, err := pglsn.Parse(lsn)
	require.NoError(t, err)
	seg := uint64(l.SegmentStart()) + after*pglsn.SegmentSize
	return fmt.Sprintf("%08X%08X%08X", tl, seg>>32, (seg&0xffffffff)/pglsn.SegmentSize)
}

// TestPointInTimeRestore: a physical base backup and the archived WAL bring
// a node back to a time between two writes, exactly; a WAL segment missing
// from the archive refuses the restore with nothing stopped.
func TestPointInTimeRestore(t *testing.T) {
	requireTestNodeImages(t)
	start := time.Now()
	c := startCluster(t)
	backups := filepath.Join(t.TempDir(), "backups")
	n := c.upTestNode("fl-pitr", "--backup-dirs", backups, "--compose-dir", repoPath("deploy", "testnode"), "--wal-archive=true")

	n.insertRows(t, "before-base", 50)
	out, err := c.ctlErr("backup", "--node", n.name, "--only", "postgres", "--pg-format", "physical")
	require.NoError(t, err, "%s", out)
	var base struct {
		WalStartLsn string `json:"walStartLsn"`
		Timeline    uint32 `json:"timeline"`
	}
	{
		var resp struct {
			RestorePoints []struct {
				Artifacts []json.RawMessage `json:"artifacts"`
			} `json:"restorePoints"`
		}
		out := c.ctl("restore", "--list", "--node", n.name, "-o", "json")
		require.NoError(t, json.Unmarshal([]byte(out), &resp), "%s", out)
		require.Len(t, resp.RestorePoints, 1)
		require.Len(t, resp.RestorePoints[0].Artifacts, 1)
		require.NoError(t, json.Unmarshal(resp.RestorePoints[0].Artifacts[0], &base))
		require.NotEmpty(t, base.WalStartLsn, "the base backup records its WAL start")
	}
	t.Logf("base backup done at %s (WAL start %s, timeline %d)", time.Since(start).Round(time.Second), base.WalStartLsn, base.Timeline)

	n.insertRows(t, "t1", 10)
	time.Sleep(1100 * time.Millisecond)
	n.insertRows(t, "t2", 10)
	atT2 := n.state(t).Rows
	time.Sleep(1100 * time.Millisecond)
	target := time.Now()
	time.Sleep(1100 * time.Millisecond)
	n.insertRows(t, "t3", 10)
	t3 := time.Now()
	require.NotEqual(t, atT2, n.state(t).Rows)

	require.Eventually(t, func() bool {
		w, ok := c.window(n.name)
		return ok && w.Latest.After(t3)
	}, 90*time.Second, 500*time.Millisecond, "the archived WAL reaches past t3")
	w, _ := c.window(n.name)
	t.Logf("window %s .. %s (WAL shipped %s after t3's rows)", w.Earliest.Format(time.RFC3339Nano), w.Latest.Format(time.RFC3339Nano), w.Latest.Sub(t3).Round(time.Millisecond))

	t.Run("restore --to-time between t2 and t3 gives exactly the rows through t2", func(t *testing.T) {
		t0 := time.Now()
		out, err := c.ctlErr("restore", "--node", n.name, "--to-time", target.UTC().Format(time.RFC3339Nano), "--yes")
		require.NoError(t, err, "%s", out)
		t.Logf("point-in-time restore took %s: %s", time.Since(t0).Round(100*time.Millisecond), out)
		require.Equal(t, atT2, n.state(t).Rows, "the rows through t2, none of t3")
		require.True(t, running(t, n.name+"-api"))
		recov, err := exec.Command("docker", "exec", "-u", "postgres", n.name+"-postgres", "psql", "-X", "-A", "-t", "-d", "forlock",
			"-c", "SELECT pg_is_in_recovery(), current_setting('restore_command') = ''").CombinedOutput()
		require.NoError(t, err, "%s", recov)
		require.Equal(t, "f|t", strings.TrimSpace(string(recov)), "promoted, and the recovery settings reset")
	})

	t.Run("a missing WAL segment is refused with nothing stopped", func(t *testing.T) {
		seg := segmentName(t, base.Timeline, base.WalStartLsn, 0)
		file := filepath.Join(backups, "wal", w.NodeID, fmt.Sprintf("%08X", base.Timeline), seg+".zst.enc")
		require.FileExists(t, file)
		saved, err := os.ReadFile(file)
		require.NoError(t, err)
		require.NoError(t, os.Remove(file))
		defer func() { require.NoError(t, os.WriteFile(file, saved, 0o600)) }()
		before := n.containerStamps(t)
		rowsBefore := n.state(t).Rows
		out, err := c.ctlErr("restore", "--node", n.name, "--to-time", target.UTC().Format(time.RFC3339Nano), "--yes")
		require.Error(t, err, "%s", out)
		msg := out + err.Error()
		require.Contains(t, msg, "WAL segment "+seg, "the message names the segment")
		require.Contains(t, msg, "nothing was stopped")
		require.Equal(t, before, n.containerStamps(t), "the live containers are untouched")
		require.Equal(t, rowsBefore, n.state(t).Rows)
	})

	t.Run("the archiver streams the new timeline after the restore", func(t *testing.T) {
		n.insertRows(t, "after", 5)
		after := time.Now()
		require.Eventually(t, func() bool {
			w, ok := c.window(n.name)
			return ok && w.Timeline > base.Timeline && w.Latest.After(after)
		}, 90*time.Second, 500*time.Millisecond, "WAL of the new timeline is archived")
	})
	t.Run("a replay that cannot reach the target puts the previous data back, with PostgreSQL's reason", func(t *testing.T) {
		// The WAL holding t1..t3 replaced by zeros, encrypted with the
		// node's own archive key: it verifies, but recovery ends early.
		raw, err := os.ReadFile(filepath.Join(n.agentDir, "archive-key.json"))
		require.NoError(t, err)
		var kj struct {
			KeyID string `json:"key_id"`
			Key   []byte `json:"key"`
		}
		require.NoError(t, json.Unmarshal(raw, &kj))
		k, err := keys.NewNamed(kj.KeyID, kj.Key)
		require.NoError(t, err)
		tlDir := filepath.Join(backups, "wal", w.NodeID, fmt.Sprintf("%08X", base.Timeline))
		next := segmentName(t, base.Timeline, base.WalStartLsn, 1)
		files, err := filepath.Glob(filepath.Join(tlDir, next+"*.zst.enc"))
		require.NoError(t, err)
		require.NotEmpty(t, files, "the segment after the base's start is archived")
		for _, f := range files {
			name := strings.TrimSuffix(filepath.Base(f), ".zst.enc")
			dk, err := keys.NewDataKey()
			require.NoError(t, err)
			wrapped, err := k.Wrap(context.Background(), dk)
			require.NoError(t, err)
			var buf bytes.Buffer
			aw, err := artifact.NewWriter(&buf, artifact.Header{Kind: artifact.KindWal, Node: n.name, Created: time.Now(), KeyID: kj.KeyID, WrappedKey: wrapped, FileName: name}, dk)
			require.NoError(t, err)
			_, err = aw.Write(make([]byte, 16<<20))
			require.NoError(t, err)
			require.NoError(t, aw.Close())
			require.NoError(t, os.WriteFile(f, buf.Bytes(), 0o600))
		}
		rowsBefore := n.state(t).Rows
		t0 := time.Now()
		out, err := c.ctlErr("restore", "--node", n.name, "--to-time", target.UTC().Format(time.RFC3339Nano), "--yes")
		require.Error(t, err, "%s", out)
		t.Logf("failed replay and rollback took %s", time.Since(t0).Round(100*time.Millisecond))
		require.Contains(t, out, "the previous data is back")
		require.Contains(t, out, "recovery ended before configured recovery target was reached", "PostgreSQL's reason")
		require.Equal(t, rowsBefore, n.state(t).Rows, "the data as it was before the restore")
		require.True(t, running(t, n.name+"-api"))
	})
	t.Logf("whole test %s", time.Since(start).Round(time.Second))
}
