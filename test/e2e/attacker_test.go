package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/stretchr/testify/require"
)

// attackPlan is what the attacker binary (test/e2e/attacker) does, with
// the key and certificate it stole from an agent's state dir.
type attackPlan struct {
	Addr, CAFile, StateDir string
	// Task is a running task of the node's, FinishedTask one of a finished
	// job; Updates is how many RUNNING updates with 4 KB of progress to
	// send when told "flood" (one in 100 names FinishedTask instead).
	Task, FinishedTask string
	Updates            int
}

// attackerProc is a running hostile agent: commands go in by say, answers
// come out on lines.
type attackerProc struct {
	in    io.WriteCloser
	lines chan string
}

func (a *attackerProc) say(cmd string) { _, _ = fmt.Fprintln(a.in, cmd) }

// attacker starts the attacker binary and waits until its stolen identity
// has opened the control stream.
func (c *cluster) attacker(plan attackPlan) *attackerProc {
	c.t.Helper()
	plan.Addr, plan.CAFile = c.addr, filepath.Join(c.dataDir, "ca.crt")
	raw, err := json.Marshal(plan)
	require.NoError(c.t, err)
	cmd := exec.Command(filepath.Join(c.binaries(), "attacker"))
	cmd.Env = append(os.Environ(), "FORLOCK_ATTACK_PLAN="+string(raw))
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	require.NoError(c.t, err)
	out, err := cmd.StdoutPipe()
	require.NoError(c.t, err)
	require.NoError(c.t, cmd.Start())
	// A real attacker encrypts and sends on its own machine: here it runs at
	// a lower priority, so the CPU it spends weighs little on what is
	// measured on this one.
	require.NoError(c.t, syscall.Setpriority(syscall.PRIO_PROCESS, cmd.Process.Pid, 10))
	c.t.Cleanup(func() { _ = in.Close(); _ = cmd.Process.Kill(); _ = cmd.Wait() })
	a := &attackerProc{in: in, lines: make(chan string, 16)}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			a.lines <- sc.Text()
		}
		close(a.lines)
	}()
	select {
	case line := <-a.lines:
		require.Equal(c.t, "connected", line)
	case <-time.After(30 * time.Second):
		c.t.Fatal("the attacker never connected")
	}
	return a
}
