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
	requireTestNodeImages(t)
	_, port, err := net.SplitHostPort(freePort(t))
	require.NoError(t, err)
	cmd := exec.Command("bash", filepath.Join("..", "..", "deploy", "demo.sh"))
	dir := filepath.Join(t.TempDir(), "demo")
	cmd.Env = append(os.Environ(), "BIN="+binDir, "DEMO_DIR="+dir, "DEMO_PORT="+port, "DEMO_ONESHOT=1", "DEMO_NODE=fl-demo-"+runSuffix)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	// forlockctl status shows the node online and the health run has no
	// CRITICAL check (a WARN for a slow API under load is allowed).
	require.Regexp(t, `(?m)^demo-node-1\s+online\s+yes\s`, string(out))
	require.Regexp(t, `(?m)redis\s+OK`, string(out))
	require.NotRegexp(t, `CRITICAL`, string(out))
	nodes, err := os.ReadFile(filepath.Join(dir, "nodes.json"))
	require.NoError(t, err)
	require.Contains(t, string(nodes), `"name": "demo-node-1"`)
	require.Contains(t, string(nodes), `"state": "NODE_STATE_ONLINE"`)
}
