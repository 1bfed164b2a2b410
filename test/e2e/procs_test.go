package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// proc is a running binary whose output is kept for failure reports.
type proc struct {
	name string
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{} // closed when the process has exited
}

func startEnv(t *testing.T, env []string, name string, args ...string) *proc {
	t.Helper()
	return startBin(t, binDir, env, name, args...)
}

// startBin starts a binary from dir (binDir, or plainBinaries' dir).
func startBin(t *testing.T, dir string, env []string, name string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, out: &syncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(filepath.Join(dir, name), args...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	p.cmd.Env = append(append(os.Environ(), "HOME="+t.TempDir()), env...)
	require.NoError(t, p.cmd.Start())
	go func() {
		_ = p.cmd.Wait() // the exit status of a killed process says nothing
		close(p.done)
	}()
	t.Cleanup(func() {
		p.kill(syscall.SIGKILL)
		if t.Failed() {
			t.Logf("--- %s output ---\n%s", name, p.out.String())
		}
	})
	return p
}

// kill sends sig and waits for the process to exit.
func (p *proc) kill(sig syscall.Signal) {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}

// cluster is a control plane process plus helpers to drive it with forlockctl.
type cluster struct {
	t       *testing.T
	dataDir string
	addr    string
	cp      *proc
	// cpArgs are more control plane flags, e.g. --config FILE.
	cpArgs []string
	// bin holds the binaries: binDir (built with -race) unless set.
	bin string
}

func startCluster(t *testing.T, cpArgs ...string) *cluster {
	t.Helper()
	c := &cluster{t: t, dataDir: filepath.Join(t.TempDir(), "cp"), addr: freePort(t), cpArgs: cpArgs}
	c.startControlPlane()
	return c
}

func (c *cluster) binaries() string {
	if c.bin == "" {
		return binDir
	}
	return c.bin
}

func (c *cluster) startControlPlane() {
	c.t.Helper()
	c.cp = startBin(c.t, c.binaries(), nil, "forlock-controlplane", append([]string{"--data-dir", c.dataDir, "--listen", c.addr,
		"--heartbeat-interval", "300ms", "--log-format", "text"}, c.cpArgs...)...)
	require.Eventually(c.t, func() bool {
		_, err := c.ctlErr("nodes", "list")
		return err == nil
	}, 20*time.Second, 50*time.Millisecond, "control plane never answered")
}

func (c *cluster) ctlErr(args ...string) (string, error) {
	cmd := exec.Command(filepath.Join(c.binaries(), "forlockctl"), append([]string{"--config", filepath.Join(c.dataDir, "forlockctl.yaml")}, args...)...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("forlockctl %s: %w: %s", strings.Join(args, " "), err, errOut.String())
	}
	return out.String(), nil
}

func (c *cluster) ctl(args ...string) string {
	c.t.Helper()
	out, err := c.ctlErr(args...)
	require.NoError(c.t, err)
	return out
}

type jsonNode struct {
	ID          string            `json:"id"`
	Name        string            `json:"name"`
	State       string            `json:"state"`
	Labels      map[string]string `json:"labels"`
	Enrollments int               `json:"enrollments"`
	Connected   bool              `json:"connected"`
	Quarantined bool              `json:"quarantined"`
}

func (c *cluster) nodes() []jsonNode {
	c.t.Helper()
	var resp struct {
		Nodes []jsonNode `json:"nodes"`
	}
	require.NoError(c.t, json.Unmarshal([]byte(c.ctl("nodes", "list", "-o", "json")), &resp))
	return resp.Nodes
}

func (c *cluster) node(name string) (jsonNode, bool) {
	for _, n := range c.nodes() {
		if n.Name == name {
			return n, true
		}
	}
	return jsonNode{}, false
}

func (c *cluster) waitOnline(name string) jsonNode {
	c.t.Helper()
	var got jsonNode
	require.Eventually(c.t, func() bool {
		n, ok := c.node(name)
		got = n
		return ok && n.State == "NODE_STATE_ONLINE" && n.Connected
	}, 30*time.Second, 100*time.Millisecond, "node %s never came online", name)
	return got
}

func (c *cluster) tokenFile(args ...string) string {
	c.t.Helper()
	secret := strings.TrimSpace(c.ctl(append([]string{"tokens", "create", "-q"}, args...)...))
	require.True(c.t, strings.HasPrefix(secret, "fjt_"), "token create -q printed %q", secret)
	f := filepath.Join(c.t.TempDir(), "join-token")
	require.NoError(c.t, os.WriteFile(f, []byte(secret+"\n"), 0o600))
	return f
}

// WAL archiving is on by default in the agent; on the shared two cores of a
// test run every node streaming its WAL would slow the tests that are not
// about it, so it is off unless the test passes its own --wal-archive flag.
func (c *cluster) startAgent(name, stateDir string, extra ...string) *proc {
	c.t.Helper()
	args := []string{"--control-plane", c.addr, "--ca-file", filepath.Join(c.dataDir, "ca.crt"),
		"--state-dir", stateDir, "--name", name, "--log-format", "text"}
	if !slices.ContainsFunc(extra, func(a string) bool { return strings.HasPrefix(a, "--wal-archive") }) {
		args = append(args, "--wal-archive=false")
	}
	args = append(args, extra...)
	return startBin(c.t, c.binaries(), nil, "forlock-agent", args...)
}

func TestRealProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("real processes")
	}
	c := startCluster(t)
	stateDir := filepath.Join(t.TempDir(), "agent")
	agent := c.startAgent("edge-1", stateDir, "--join-token-file", c.tokenFile("--label", "env=e2e"))
	first := c.waitOnline("edge-1")
	require.Equal(t, map[string]string{"env": "e2e"}, first.Labels)
	require.Equal(t, 1, first.Enrollments)

	st, err := os.Stat(filepath.Join(stateDir, "node.key"))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm(), "the private key must be 0600")

	t.Run("control plane killed and restarted", func(t *testing.T) {
		c.cp.kill(syscall.SIGKILL)
		c.startControlPlane()
		n := c.waitOnline("edge-1")
		require.Equal(t, first.ID, n.ID)
		require.Equal(t, 1, n.Enrollments, "the agent must reconnect, not re-enroll")
	})

	t.Run("agent restarted without a token keeps its identity", func(t *testing.T) {
		agent.kill(syscall.SIGTERM)
		require.Eventually(t, func() bool {
			n, _ := c.node("edge-1")
			return n.State == "NODE_STATE_OFFLINE"
		}, 10*time.Second, 100*time.Millisecond, "a stopped agent says goodbye: offline")
		agent = c.startAgent("edge-1", stateDir)
		n := c.waitOnline("edge-1")
		require.Equal(t, first.ID, n.ID)
		require.Equal(t, 1, n.Enrollments)
	})

	t.Run("lost state dir re-enrolls with a for-node token and the same node ID", func(t *testing.T) {
		agent.kill(syscall.SIGKILL)
		require.NoError(t, os.RemoveAll(stateDir))
		// A new key under a registered name: an ordinary token is refused.
		agent = c.startAgent("edge-1", stateDir, "--join-token-file", c.tokenFile())
		require.Eventually(t, func() bool { return strings.Contains(agent.out.String(), "code=AlreadyExists") },
			20*time.Second, 50*time.Millisecond)
		agent.kill(syscall.SIGKILL)
		require.NoError(t, os.RemoveAll(stateDir))
		agent = c.startAgent("edge-1", stateDir, "--join-token-file", c.tokenFile("--for-node", "edge-1"))
		require.Eventually(t, func() bool {
			n, _ := c.node("edge-1")
			return n.Enrollments == 2 && n.State == "NODE_STATE_ONLINE"
		}, 30*time.Second, 100*time.Millisecond)
		n, _ := c.node("edge-1")
		require.Equal(t, first.ID, n.ID)
		require.Len(t, c.nodes(), 1)
	})

	t.Run("removed node is refused", func(t *testing.T) {
		out := c.ctl("nodes", "remove", "edge-1", "--yes")
		require.Contains(t, out, "edge-1")
		_, ok := c.node("edge-1")
		require.False(t, ok)
		// The agent keeps retrying but never gets back in with its old identity.
		time.Sleep(2 * time.Second)
		_, ok = c.node("edge-1")
		require.False(t, ok)
		require.Contains(t, agent.out.String(), "refused")
	})
}

func TestErrorsFromForlockctl(t *testing.T) {
	if testing.Short() {
		t.Skip("real processes")
	}
	c := startCluster(t)
	_, err := c.ctlErr("nodes", "get", "nope")
	require.ErrorContains(t, err, "not found")
	_, err = c.ctlErr("tokens", "create", "--ttl", "-1s")
	require.Error(t, err)
	_, err = c.ctlErr("nodes", "list", "-l", "Bad==")
	require.Error(t, err)
	cmd := exec.Command(filepath.Join(binDir, "forlockctl"), "--addr", c.addr, "--ca-file", filepath.Join(c.dataDir, "ca.crt"),
		"--token", "fat_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "nodes", "list")
	out, err := cmd.CombinedOutput()
	require.Error(t, err)
	require.Contains(t, string(out), "token")
}
