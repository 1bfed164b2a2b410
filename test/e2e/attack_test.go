package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/forlock/fleet/internal/ctlconfig"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// TestHostileAgentFlood: an agent's stolen key and certificate open the
// control stream of a node whose task is running, and send 20,000 RUNNING
// updates with 4 KB of progress each, mixed with updates naming a task of a
// finished job. The control plane (built without -race, so timings and
// memory mean what they say) stores a bounded history, keeps its memory,
// serves the job's history, and submits on other jobs take no longer than
// without the flood. Then a heartbeat flood closes the stream.
func TestHostileAgentFlood(t *testing.T) {
	if testing.Short() {
		t.Skip("real processes")
	}
	c := &cluster{t: t, dataDir: filepath.Join(t.TempDir(), "cp"), addr: freePort(t), bin: plainBinaries(t)}
	c.startControlPlane()
	evilDir := filepath.Join(t.TempDir(), "evil")
	tokens := c.tokenFile("--max-uses", "2")
	evil := c.startTestAgent("evil", evilDir, 10*time.Millisecond, "--join-token-file", tokens)
	c.startTestAgent("good", filepath.Join(t.TempDir(), "good"), 0, "--join-token-file", tokens)
	c.waitOnline("evil")
	c.waitOnline("good")

	// A job of evil's that has finished, then one left running.
	finished := c.submitDetached("--node", "evil")
	require.Equal(t, "JOB_STATE_SUCCEEDED", c.waitJobEnd(finished, 30*time.Second).State)
	finishedTask := c.job(finished).Tasks[0].ID
	evil.kill(syscall.SIGKILL)
	evil = c.startTestAgent("evil", evilDir, time.Hour)
	target := c.submitDetached("--node", "evil")
	require.Eventually(t, func() bool {
		j := c.job(target)
		return len(j.Tasks) == 1 && j.Tasks[0].State == "TASK_STATE_RUNNING"
	}, 30*time.Second, 20*time.Millisecond)
	targetTask := c.job(target).Tasks[0].ID
	// The agent dies; its key and certificate are the attacker's now.
	evil.kill(syscall.SIGKILL)

	// SubmitJob latency as an operator sees it (forlockctl, as the issue
	// measured it), and of the bare RPC from this process, for the log.
	jobs := c.jobClient()
	rpc := func() time.Duration {
		start := time.Now()
		_, err := jobs.SubmitJob(context.Background(), &forlockv1.SubmitJobRequest{
			Spec:   &forlockv1.JobSpec{Kind: &forlockv1.JobSpec_HealthCheck{HealthCheck: &forlockv1.HealthCheckSpec{}}},
			Target: &forlockv1.Target{Nodes: []string{"good"}},
		})
		require.NoError(t, err)
		return time.Since(start)
	}
	ctl := func() time.Duration {
		start := time.Now()
		c.submitDetached("--node", "good")
		return time.Since(start)
	}
	rpc() // warm the connection

	dbFile := filepath.Join(c.dataDir, "fleet.db")
	dbBefore, rssBefore, cpuBefore := fileSize(t, dbFile), rss(t, c.cp.cmd.Process.Pid), cpuTime(t, c.cp.cmd.Process.Pid)
	// The attacker is a process of its own, as it would be: its sending
	// does not slow the submits measured here.
	const updates, rounds = 20000, 3
	att := c.attacker(attackPlan{StateDir: evilDir, Task: targetTask, FinishedTask: finishedTask, Updates: updates})
	// Quiet and flooded windows alternate, so that the machine's other load
	// weighs on both alike.
	var quietCtl, floodCtl, quietRPC, floodRPC []time.Duration
	var floods []time.Duration
	round := 0
	measure := func() {
		quietCtl, floodCtl, quietRPC, floodRPC = nil, nil, nil, nil
		for range rounds {
			round++
			r := round - 1
			for range 4 {
				quietCtl, quietRPC = append(quietCtl, ctl()), append(quietRPC, rpc())
			}
			att.say("flood")
			var flood time.Duration
			for n := 0; flood == 0 || n < 2; n++ { // the flood may outrun the submits: its aftermath counts too
				select {
				case line := <-att.lines:
					d, err := time.ParseDuration(strings.TrimPrefix(line, "flooded "))
					require.NoError(t, err, "attacker: %s", line)
					flood = d
				default:
				}
				floodCtl, floodRPC = append(floodCtl, ctl()), append(floodRPC, rpc())
			}
			floods = append(floods, flood)
			// The control plane has taken the whole flood once the task's live
			// progress is its last report.
			last := fmt.Sprintf(`"bytesDone": "%d"`, (r+1)*updates-1)
			require.Eventually(t, func() bool {
				return strings.Contains(c.ctl("jobs", "get", target, "-o", "json"), last)
			}, 20*time.Second, 50*time.Millisecond, "the live progress follows every report")
		}
	}
	measure()
	// The latency comparison is the only figure here that the machine's
	// other load can spoil (CI runs other packages beside this one): a
	// noisy measurement is taken again, up to twice, with fresh floods. A
	// real regression (the old engine: 25 ms -> 209 ms) fails every time.
	for try := 1; try < 3 && median(floodCtl) > 2*median(quietCtl); try++ {
		t.Logf("noisy measurement %d: median %s quiet, %s flooded; measuring again", try, median(quietCtl), median(floodCtl))
		measure()
	}
	cpu := cpuTime(t, c.cp.cmd.Process.Pid) - cpuBefore
	time.Sleep(time.Second) // a progress event's commit

	dbGrowth, rssGrowth := fileSize(t, dbFile)-dbBefore, rss(t, c.cp.cmd.Process.Pid)-rssBefore
	t.Logf("%d floods of %d updates with 4 KB of progress, each in %v; fleet.db %+d KiB (now %d KiB); RSS %+d KiB; control plane CPU %s",
		round, updates, floods, dbGrowth>>10, fileSize(t, dbFile)>>10, rssGrowth>>10, cpu)
	t.Logf("SubmitJob by forlockctl: median %s quiet %v, %s flooded %v", median(quietCtl), quietCtl, median(floodCtl), floodCtl)
	t.Logf("SubmitJob RPC: median %s quiet %v, %s flooded %v", median(quietRPC), quietRPC, median(floodRPC), floodRPC)
	// The attack sends 20,000 updates in under a second. The niced
	// attacker on a busy two-core machine sometimes needs a little more:
	// still a burst the control plane has to take in, not a trickle.
	for _, f := range floods {
		require.Less(t, f, 5*time.Second, "a burst of 20,000 updates")
	}
	require.Less(t, dbGrowth, int64(5<<20), "fleet.db grows less than 5 MB")
	require.Less(t, rssGrowth, int64(100<<20), "the control plane's RSS grows less than 100 MB")
	require.LessOrEqual(t, median(floodCtl), 2*median(quietCtl), "submits during the flood take at most twice as long")

	hist := c.ctl("jobs", "get", target, "--history")
	require.Contains(t, hist, "job submitted: health_check on 1 node(s)", "the history is printed from its first event")
	require.Less(t, strings.Count(hist, "\n"), 100, "the history stays short: %d lines", strings.Count(hist, "\n"))
	got := c.job(finished)
	require.Equal(t, "TASK_STATE_SUCCEEDED", got.Tasks[0].State, "the finished task is untouched")

	// Heartbeats as fast as the stream goes: the excess is dropped, and
	// the flood closes the stream.
	att.say("heartbeats")
	select {
	case line := <-att.lines:
		require.Equal(t, "closed ResourceExhausted", line)
	case <-time.After(30 * time.Second):
		t.Fatal("the heartbeat flood was never cut off")
	}
	n, _ := c.node("evil")
	require.Eventually(t, func() bool {
		out := c.cp.out.String()
		return strings.Contains(out, "control message flood") && strings.Contains(out, n.ID)
	}, 5*time.Second, 50*time.Millisecond, "a log line names the node")
}

// jobClient is a JobService client with the admin token.
func (c *cluster) jobClient() forlockv1.JobServiceClient {
	c.t.Helper()
	f, err := ctlconfig.Load(filepath.Join(c.dataDir, "forlockctl.yaml"))
	require.NoError(c.t, err)
	pool := x509.NewCertPool()
	pem, err := os.ReadFile(filepath.Join(c.dataDir, "ca.crt"))
	require.NoError(c.t, err)
	require.True(c.t, pool.AppendCertsFromPEM(pem))
	conn, err := grpc.NewClient(c.addr,
		grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13})),
		grpc.WithPerRPCCredentials(bearer(f.Contexts[0].Token)))
	require.NoError(c.t, err)
	c.t.Cleanup(func() { _ = conn.Close() })
	return forlockv1.NewJobServiceClient(conn)
}

type bearer string

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}

func (bearer) RequireTransportSecurity() bool { return true }

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	st, err := os.Stat(path)
	require.NoError(t, err)
	return st.Size()
}

// rss is a process's resident set size in bytes, from /proc.
func rss(t *testing.T, pid int) int64 {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	require.NoError(t, err)
	for line := range strings.SplitSeq(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			require.NoError(t, err)
			return kb << 10
		}
	}
	t.Fatalf("no VmRSS in /proc/%d/status", pid)
	return 0
}

// cpuTime is the user and system CPU time a process has used, from /proc.
func cpuTime(t *testing.T, pid int) time.Duration {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	require.NoError(t, err)
	// Fields after the command name (which may hold spaces) in parentheses.
	f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+2:]))
	utime, err := strconv.ParseInt(f[11], 10, 64)
	require.NoError(t, err)
	stime, err := strconv.ParseInt(f[12], 10, 64)
	require.NoError(t, err)
	return time.Duration(utime+stime) * 10 * time.Millisecond // USER_HZ is 100 on Linux
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}
