package e2e

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestReadmeDemo runs the README's run command (deploy/demo.sh behind
// `make demo`) in one-shot mode, so the README stays true.
func TestReadmeDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("real processes")
	}
	_, port, err := net.SplitHostPort(freePort(t))
	require.NoError(t, err)
	cmd := exec.Command("bash", filepath.Join("..", "..", "deploy", "demo.sh"))
	cmd.Env = append(os.Environ(), "BIN="+binDir, "DEMO_DIR="+filepath.Join(t.TempDir(), "demo"), "DEMO_PORT="+port, "DEMO_ONESHOT=1")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Contains(t, string(out), `"name": "demo-node-1"`)
	require.Contains(t, string(out), `"state": "NODE_STATE_ONLINE"`)
}
