package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestControlPlaneSnapshotRestore is control-plane DR with real processes:
// a control plane with a real test node, its agent and a backup in the
// catalog; a snapshot saved with forlockctl; the control plane stopped and
// its data dir wiped; the snapshot restored with forlock-controlplane; the
// control plane started again. The agent gets back in with its node ID and
// no new token, restore --list is what it was, and a restore from the
// restore point made before the snapshot brings back every row and key.
func TestControlPlaneSnapshotRestore(t *testing.T) {
	requireTestNodeImages(t)
	c := startCluster(t)
	backups := filepath.Join(t.TempDir(), "backups")
	n1 := c.upTestNode("fl-snap-1", "--backup-dirs", backups, "--compose-dir", repoPath("deploy", "testnode"))
	out, err := exec.Command("docker", "exec", n1.name+"-api", "forlockapi", "load", "--mb", "5").CombinedOutput()
	require.NoError(t, err, "%s", out)
	before := n1.state(t)
	require.NotEmpty(t, before.Redis)
	res, err := c.ctlErr("backup", "--node", n1.name, "--dest", filepath.Join(backups, n1.name))
	require.NoError(t, err, "%s", res)
	listBefore := c.ctl("restore", "--list", "--node", n1.name, "-o", "json")
	nodeBefore, ok := c.node(n1.name)
	require.True(t, ok)

	pass := filepath.Join(t.TempDir(), "pass")
	require.NoError(t, os.WriteFile(pass, []byte("e2e snapshot passphrase\n"), 0o600))
	snap := filepath.Join(t.TempDir(), "cp.snap")
	out = []byte(c.ctl("controlplane", "snapshot", "save", snap, "--passphrase-file", pass))
	require.Contains(t, string(out), "sha256")
	st, err := os.Stat(snap)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm())

	c.cp.kill(syscall.SIGTERM)
	require.NoError(t, os.RemoveAll(c.dataDir))
	restore := exec.Command(filepath.Join(c.binaries(), "forlock-controlplane"), "snapshot", "restore", snap,
		"--data-dir", c.dataDir, "--passphrase-file", pass)
	rout, err := restore.CombinedOutput()
	require.NoError(t, err, "%s", rout)
	require.Contains(t, string(rout), "restored the control plane from the snapshot taken at")
	c.startControlPlane()

	after := c.waitOnline(n1.name)
	require.Equal(t, nodeBefore.ID, after.ID, "the agent is back with its node ID")
	require.Equal(t, 1, after.Enrollments, "without enrolling again")
	require.Equal(t, listBefore, c.ctl("restore", "--list", "--node", n1.name, "-o", "json"))
	require.Contains(t, c.ctl("status"), "control plane restored at")

	n1.damage(t)
	require.NotEqual(t, before, n1.state(t))
	rres, err := c.ctlErr("restore", "--latest", "--node", n1.name, "--yes")
	require.NoError(t, err, "%s", rres)
	require.Equal(t, before, n1.state(t))
}
