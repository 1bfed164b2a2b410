package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// TestControlPlaneDiskFull runs a real control plane with its data dir on a
// small tmpfs and fills it: submits fail fast with the disk-full message,
// heartbeats go on, a task result that lands meanwhile is kept, and once the
// filler is gone submits succeed again without a restart. After a restart
// every job whose submit returned OK is there, and no refused one is.
func TestControlPlaneDiskFull(t *testing.T) {
	if testing.Short() {
		t.Skip("real processes")
	}
	mnt := t.TempDir()
	if err := unix.Mount("tmpfs", mnt, "tmpfs", 0, "size=16m"); err != nil {
		t.Fatalf("mount a 16 MiB tmpfs for the control plane's data dir: %v: run this test as root (sudo -E go test ./test/e2e -run TestControlPlaneDiskFull)", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(mnt, unix.MNT_DETACH) })
	c := &cluster{t: t, dataDir: filepath.Join(mnt, "cp"), addr: freePort(t), cpArgs: []string{"--disk-reserve", "1MiB"}}
	c.startControlPlane()
	c.startTestAgent("web1", filepath.Join(t.TempDir(), "a"), 1500*time.Millisecond, "--join-token-file", c.tokenFile())
	c.waitOnline("web1")

	acked := []string{c.submitDetached("--node", "web1")}
	pending := c.submitDetached("--node", "web1")
	acked = append(acked, pending)
	require.Eventually(t, func() bool {
		j := c.job(pending)
		return len(j.Tasks) == 1 && j.Tasks[0].State == "TASK_STATE_RUNNING"
	}, 20*time.Second, 20*time.Millisecond)

	filler := fillDisk(t, mnt)
	fullMsg := "control plane data disk is full: free space in " + c.dataDir + " ("
	for range 3 {
		start := time.Now()
		out, err := c.ctlErr("health-check", "--node", "web1", "--detach")
		took := time.Since(start)
		require.Error(t, err, "submit on a full disk: %s", out)
		require.ErrorContains(t, err, fullMsg)
		require.Less(t, took, time.Second, "a submit fails fast on a full disk")
		t.Logf("submit refused in %s", took.Round(time.Millisecond))
	}
	_, err := c.ctlErr("tokens", "create")
	require.ErrorContains(t, err, fullMsg, "other writes are refused too")
	status := c.ctl("status")
	require.Regexp(t, `^control plane \S+: DISK FULL since `, status, "status says so on its first line")
	require.Contains(t, status, fullMsg)

	// Heartbeats only touch memory: three seconds is ten intervals, more
	// than enough to be marked unreachable if they were refused. The
	// pending task ends meanwhile; its result cannot be committed.
	time.Sleep(3 * time.Second)
	n, ok := c.node("web1")
	require.True(t, ok)
	require.Equal(t, "NODE_STATE_ONLINE", n.State, "heartbeats go on while the disk is full")
	require.True(t, n.Connected)

	require.NoError(t, os.Remove(filler))
	start := time.Now()
	var resumed string
	require.Eventually(t, func() bool {
		out, err := c.ctlErr("health-check", "--node", "web1", "--detach")
		resumed = strings.TrimSpace(out)
		return err == nil
	}, 5*time.Second, 50*time.Millisecond, "submits resume within 5s of space returning, without a restart")
	t.Logf("submits resumed %s after the filler was removed", time.Since(start).Round(time.Millisecond))
	acked = append(acked, resumed, c.submitDetached("--node", "web1"))
	require.Contains(t, c.ctl("status"), ": data disk ok, ")

	c.cp.kill(syscall.SIGKILL)
	c.startControlPlane()
	for _, id := range acked {
		require.Equal(t, id, c.job(id).ID, "acknowledged job %s kept", id)
	}
	var list struct {
		Jobs []jsonJob `json:"jobs"`
	}
	require.NoError(t, json.Unmarshal([]byte(c.ctl("jobs", "list", "-o", "json")), &list))
	require.Len(t, list.Jobs, len(acked), "a refused submit left no job behind")
	j := c.waitJobEnd(pending, 30*time.Second)
	require.Equal(t, "JOB_STATE_SUCCEEDED", j.State, "the result that landed while the disk was full was kept")
}

// fillDisk writes a file until the file system is full.
func fillDisk(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	require.NoError(t, err)
	buf := make([]byte, 64<<10)
	for {
		if _, err = f.Write(buf); err != nil {
			break
		}
	}
	require.ErrorIs(t, err, syscall.ENOSPC, "filling stopped on another error")
	require.NoError(t, f.Close())
	var st unix.Statfs_t
	require.NoError(t, unix.Statfs(dir, &st))
	require.Less(t, st.Bavail*uint64(st.Bsize), uint64(64<<10)) //nolint:gosec // block size is positive
	return path
}
