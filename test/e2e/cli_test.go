package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/forlock/fleet/agent"
	"github.com/forlock/fleet/internal/ctlconfig"
	"github.com/forlock/fleet/internal/protocol"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
	"github.com/forlock/fleet/test/bridge"
)

// check is the health_check handler of one test agent: it reports
// progress, waits until its gate is closed (a nil gate: not at all), then
// passes, or fails when fail is set, with detail lines naming its node.
type check struct {
	node      string
	fail      bool
	gate      chan struct{}
	runs      atomic.Int32
	cancelled atomic.Bool
}

func (c *check) Run(ctx context.Context, _ agent.TaskAssignment, report func(*forlockv1.Progress)) (agent.TaskResult, error) {
	c.runs.Add(1)
	report(&forlockv1.Progress{Phase: "checking", Percent: 50})
	if c.gate != nil {
		select {
		case <-c.gate:
		case <-ctx.Done():
			c.cancelled.Store(true)
			return agent.TaskResult{}, ctx.Err()
		}
	}
	if c.fail {
		return agent.TaskResult{Details: []string{"disk /: CRITICAL on " + c.node, "memory: ok"}}, fmt.Errorf("planned failure on %s", c.node)
	}
	return agent.TaskResult{Message: "all 2 checks OK", Details: []string{"disk /: ok on " + c.node, "memory: ok"}}, nil
}

// checkFleet starts a control plane with one agent per check, named after
// it, and waits until all are online.
func checkFleet(t *testing.T, checks ...*check) *fleet {
	t.Helper()
	f := newFleet(t, nil)
	token := f.joinToken(uint32(len(checks)))
	for _, c := range checks {
		f.runAgent(agentOpts{name: c.node, token: token, handlers: map[protocol.Kind]agent.TaskHandler{"health_check": c}})
	}
	f.waitOnline(len(checks))
	return f
}

// ctl is the connection flags of forlockctl for f: its generated config.
func (f *fleet) ctl() []string { return []string{"--config", f.cp.CtlConfigFile()} }

// ctlVia is the connection flags for f's admin context, dialling addr.
func (f *fleet) ctlVia(addr string) []string {
	f.t.Helper()
	file, err := ctlconfig.Load(f.cp.CtlConfigFile())
	require.NoError(f.t, err)
	c, err := file.Context("")
	require.NoError(f.t, err)
	return []string{"--addr", addr, "--ca-file", c.CAFile, "--token", c.Token}
}

// ctlProc is a run of the real forlockctl binary.
type ctlProc struct {
	cmd            *exec.Cmd
	stdout, stderr *syncBuffer
	done           chan struct{}
	code           int
}

// startCtl runs forlockctl with args, a fresh HOME and no FORLOCK_*
// variables, so that only the flags say where to connect.
func startCtl(t *testing.T, args ...string) *ctlProc {
	t.Helper()
	p := &ctlProc{stdout: &syncBuffer{}, stderr: &syncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(filepath.Join(binDir, "forlockctl"), args...)
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	home := t.TempDir()
	// GORACE: the race-built binary would sleep a second before every
	// clean exit; a race still fails the run with exit code 66.
	p.cmd.Env = []string{"HOME=" + home, "XDG_CONFIG_HOME=" + filepath.Join(home, ".config"), "GORACE=atexit_sleep_ms=0"}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "FORLOCK_") && !strings.HasPrefix(kv, "HOME=") && !strings.HasPrefix(kv, "XDG_CONFIG_HOME=") && !strings.HasPrefix(kv, "GORACE=") {
			p.cmd.Env = append(p.cmd.Env, kv)
		}
	}
	require.NoError(t, p.cmd.Start())
	go func() {
		_ = p.cmd.Wait() // the exit code is what the tests check
		p.code = p.cmd.ProcessState.ExitCode()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("--- forlockctl %s ---\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), p.stdout, p.stderr)
		}
	})
	return p
}

// wait waits for the run to end and returns its exit code.
func (p *ctlProc) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(60 * time.Second):
		t.Fatalf("forlockctl %v still running after 60s", p.cmd.Args[1:])
	}
	return p.code
}

// runCtl runs forlockctl to its end.
func runCtl(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	p := startCtl(t, args...)
	code = p.wait(t)
	return code, p.stdout.String(), p.stderr.String()
}

func args(conn []string, more ...string) []string {
	return append(append([]string{}, conn...), more...)
}

var watchHeader = regexp.MustCompile(`^job ([0-9a-f]{24}) health_check on (\d+) nodes: `)

// watchedJob is the job ID from the first line of a watch's line view.
func watchedJob(t *testing.T, stdout string) string {
	t.Helper()
	m := watchHeader.FindStringSubmatch(stdout)
	require.NotNil(t, m, "no job header in:\n%s", stdout)
	return m[1]
}

// seqs are the event numbers of a line view's "#SEQ ..." lines, in order.
func seqs(t *testing.T, out string) []uint64 {
	t.Helper()
	var got []uint64
	for _, m := range regexp.MustCompile(`(?m)^#(\d+) `).FindAllStringSubmatch(out, -1) {
		n, err := strconv.ParseUint(m[1], 10, 64)
		require.NoError(t, err)
		got = append(got, n)
	}
	return got
}

// requireNodeRow checks a task table row and the detail lines under it.
func requireNodeRow(t *testing.T, out, node, state string, details ...string) {
	t.Helper()
	row := `(?m)^` + regexp.QuoteMeta(node) + `\s+` + state + `\s.*\n`
	for _, d := range details {
		row += `    ` + regexp.QuoteMeta(d) + `\n`
	}
	require.Regexp(t, row, out)
}

// outcome is how a check's node shows in the task table: its state and
// first detail line.
func (c *check) outcome() (state, detail string) {
	if c.fail {
		return "failed", "disk /: CRITICAL on " + c.node
	}
	return "succeeded", "disk /: ok on " + c.node
}

func TestCtlHealthCheckExitCodes(t *testing.T) {
	tests := []struct {
		name   string
		fail   [2]bool
		code   int
		state  forlockv1.JobState
		stderr string // after "forlockctl: job ID "
	}{
		{"all succeed", [2]bool{false, false}, 0, forlockv1.JobState_JOB_STATE_SUCCEEDED, ""},
		{"some fail", [2]bool{false, true}, 2, forlockv1.JobState_JOB_STATE_PARTIALLY_FAILED, "partially failed: 1 of 2 tasks succeeded\n"},
		{"all fail", [2]bool{true, true}, 1, forlockv1.JobState_JOB_STATE_FAILED, "failed: none of its 2 tasks succeeded\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checks := []*check{{node: "web-1", fail: tt.fail[0]}, {node: "web-2", fail: tt.fail[1]}}
			f := checkFleet(t, checks...)
			code, stdout, stderr := runCtl(t, args(f.ctl(), "health-check", "--all", "--max-parallel", "1")...)
			require.Equal(t, tt.code, code, "stderr: %s", stderr)
			id := watchedJob(t, stdout)
			if tt.stderr == "" {
				require.Empty(t, stderr)
			} else {
				require.Equal(t, "forlockctl: job "+id+" "+tt.stderr, stderr)
			}
			short := strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(tt.state.String(), "JOB_STATE_"), "_", "-"))
			require.Regexp(t, `\njob `+id+` health_check `+short+` in \S+: tasks ok/failed/skipped/total `, stdout, "the summary line")
			for _, c := range checks {
				state, detail := c.outcome()
				require.Regexp(t, `(?m)^#\d+ \d\d:\d\d:\d\dZ `+c.node+` `+state+`\b`, stdout, "the live view shows each end")
				requireNodeRow(t, stdout, c.node, state, detail, "memory: ok")
			}
			if tt.fail[1] {
				require.Contains(t, stdout, "planned failure on web-2")
			}

			got, _ := f.job(id)
			require.Equal(t, tt.state, got.GetState())
			require.True(t, got.GetTarget().GetAll(), "--all reached the control plane")
			require.Equal(t, uint32(1), got.GetRollout().GetMaxParallel())

			// Watching the ended job again gives the same exit code.
			wcode, wout, werr := runCtl(t, args(f.ctl(), "jobs", "watch", id)...)
			require.Equal(t, tt.code, wcode, werr)
			require.Equal(t, stderr, werr)
			state, detail := checks[0].outcome()
			requireNodeRow(t, wout, "web-1", state, detail, "memory: ok")
		})
	}
}

func TestCtlHealthCheckJSONPrintsOnlyTheFinalJob(t *testing.T) {
	f := checkFleet(t, &check{node: "web-1"}, &check{node: "web-2", fail: true})
	code, stdout, stderr := runCtl(t, args(f.ctl(), "-o", "json", "health-check", "--all")...)
	require.Equal(t, 2, code, stderr)
	var job forlockv1.Job
	require.NoError(t, protojson.Unmarshal([]byte(stdout), &job), "stdout holds the job and nothing else:\n%s", stdout)
	require.Regexp(t, `^[0-9a-f]{24}$`, job.GetId())
	require.Equal(t, forlockv1.JobState_JOB_STATE_PARTIALLY_FAILED, job.GetState())
	require.Len(t, job.GetTasks(), 2)
	require.Equal(t, "web-1", job.GetTasks()[0].GetNodeName())
	require.Equal(t, forlockv1.TaskState_TASK_STATE_SUCCEEDED, job.GetTasks()[0].GetState())
	require.Equal(t, []string{"disk /: ok on web-1", "memory: ok"}, job.GetTasks()[0].GetDetails())
	require.Equal(t, "web-2", job.GetTasks()[1].GetNodeName())
	require.Equal(t, forlockv1.TaskState_TASK_STATE_FAILED, job.GetTasks()[1].GetState())
	require.Contains(t, job.GetTasks()[1].GetMessage(), "planned failure on web-2")

	require.Equal(t, job.GetId(), watchedJob(t, stderr), "the live view goes to stderr")
	require.Regexp(t, `(?m)^#\d+ \d\d:\d\d:\d\dZ web-2 failed  planned failure on web-2$`, stderr)
	require.True(t, strings.HasSuffix(stderr, "forlockctl: job "+job.GetId()+" partially failed: 1 of 2 tasks succeeded\n"), stderr)
}

func TestCtlHealthCheckDetach(t *testing.T) {
	gate := make(chan struct{})
	checks := []*check{{node: "web-1", gate: gate}, {node: "web-2", gate: gate}}
	f := checkFleet(t, checks...)
	cmd := args(f.ctl(), "health-check", "--node", "web-1,web-2", "--detach", "--idempotency-key", "nightly-1")
	code, stdout, stderr := runCtl(t, cmd...)
	require.Equal(t, 0, code, stderr)
	require.Empty(t, stderr)
	require.Regexp(t, `^[0-9a-f]{24}\n$`, stdout, "--detach prints only the job ID")
	id := strings.TrimSpace(stdout)

	got, _ := f.job(id)
	require.Equal(t, forlockv1.JobState_JOB_STATE_RUNNING, got.GetState(), "returned while the job runs")
	require.Equal(t, []string{"web-1", "web-2"}, got.GetTarget().GetNodes())
	require.Equal(t, "nightly-1", got.GetIdempotencyKey())

	code, stdout, stderr = runCtl(t, cmd...)
	require.Equal(t, 0, code, stderr)
	require.Equal(t, id+"\n", stdout, "the same key gives the same job")
	require.Contains(t, stderr, `forlockctl: idempotency key "nightly-1" was used before: following its job `+id)

	close(gate)
	code, stdout, stderr = runCtl(t, args(f.ctl(), "jobs", "watch", id)...)
	require.Equal(t, 0, code, stderr)
	requireNodeRow(t, stdout, "web-2", "succeeded", "disk /: ok on web-2", "memory: ok")
	for _, c := range checks {
		require.EqualValues(t, 1, c.runs.Load(), "%s ran its task once", c.node)
	}
}

func TestCtlWatchSurvivesDroppedConnections(t *testing.T) {
	first, second := make(chan struct{}), make(chan struct{})
	f := checkFleet(t, &check{node: "web-1", gate: first}, &check{node: "web-2", gate: first},
		&check{node: "web-3", gate: second}, &check{node: "web-4", gate: second})
	b, err := bridge.New(f.cp.Addr().String())
	require.NoError(t, err)
	t.Cleanup(b.Close)

	p := startCtl(t, args(f.ctlVia(b.Addr()), "health-check", "--all")...)
	shows := func(res ...string) func() bool {
		return func() bool {
			for _, re := range res {
				if !regexp.MustCompile(`(?m)^#\d+ \S+ ` + re).MatchString(p.stdout.String()) {
					return false
				}
			}
			return true
		}
	}
	require.Eventually(t, shows("web-1 running", "web-2 running", "web-3 running", "web-4 running"), 30*time.Second, 10*time.Millisecond)

	// Cut the watch and let tasks end while it is down; then once more.
	b.DropConnections()
	close(first)
	require.Eventually(t, shows("web-1 succeeded", "web-2 succeeded"), 30*time.Second, 10*time.Millisecond, "the watch resumed")
	b.DropConnections()
	close(second)

	require.Equal(t, 0, p.wait(t), p.stderr.String())
	id := watchedJob(t, p.stdout.String())
	require.GreaterOrEqual(t, strings.Count(p.stderr.String(), "forlockctl: watch of job "+id+" broke ("), 2, "both drops broke the watch")
	_, history := f.job(id)
	want := make([]uint64, len(history))
	for i := range want {
		want[i] = uint64(i + 1)
	}
	require.Equal(t, want, seqs(t, p.stdout.String()), "every event shown once, in order, without gaps")
	for _, n := range []string{"web-1", "web-2", "web-3", "web-4"} {
		requireNodeRow(t, p.stdout.String(), n, "succeeded", "disk /: ok on "+n, "memory: ok")
	}
}

func TestCtlInterruptLeavesTheJobRunning(t *testing.T) {
	gate := make(chan struct{})
	c := &check{node: "web-1", gate: gate}
	f := checkFleet(t, c)
	p := startCtl(t, args(f.ctl(), "health-check", "--all")...)
	require.Eventually(t, func() bool {
		return regexp.MustCompile(`(?m)^#\d+ \S+ web-1 running`).MatchString(p.stdout.String())
	}, 30*time.Second, 10*time.Millisecond)
	require.NoError(t, p.cmd.Process.Signal(os.Interrupt))
	require.Equal(t, 130, p.wait(t))
	id := watchedJob(t, p.stdout.String())
	require.Equal(t, "forlockctl: job "+id+" keeps running; forlockctl jobs watch "+id+"\n", p.stderr.String())

	got, _ := f.job(id)
	require.Equal(t, forlockv1.JobState_JOB_STATE_RUNNING, got.GetState(), "Ctrl-C must not cancel the job")
	require.Empty(t, got.GetCancelReason())
	require.Equal(t, forlockv1.TaskState_TASK_STATE_RUNNING, got.GetTasks()[0].GetState())
	require.False(t, c.cancelled.Load(), "the task on the node was not stopped")

	close(gate)
	code, stdout, stderr := runCtl(t, args(f.ctl(), "jobs", "watch", id)...)
	require.Equal(t, 0, code, stderr)
	requireNodeRow(t, stdout, "web-1", "succeeded", "disk /: ok on web-1", "memory: ok")
	require.EqualValues(t, 1, c.runs.Load())
}

// listed is the job IDs of a jobs list table, with their other columns.
func listed(t *testing.T, stdout string) (ids []string, rows map[string][]string) {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	require.Equal(t, []string{"ID", "KIND", "STATE", "TASKS", "CREATED", "BY"}, strings.Fields(lines[0]))
	rows = map[string][]string{}
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		ids = append(ids, f[0])
		rows[f[0]] = f[1:4]
	}
	return ids, rows
}

var pageToken = regexp.MustCompile(`^more jobs: repeat the command with --page-token (\S+)\n$`)

func TestCtlJobsCommands(t *testing.T) {
	gate := make(chan struct{})
	held := &check{node: "web-3", gate: gate}
	f := checkFleet(t, &check{node: "web-1"}, &check{node: "web-2", fail: true}, held)
	t.Cleanup(func() { close(gate) })
	detach := func(target string) string {
		code, stdout, stderr := runCtl(t, args(f.ctl(), "health-check", "--node", target, "--detach")...)
		require.Equal(t, 0, code, stderr)
		return strings.TrimSpace(stdout)
	}
	ok := detach("web-1")
	code, _, stderr := runCtl(t, args(f.ctl(), "jobs", "watch", ok)...)
	require.Equal(t, 0, code, stderr)
	partial := detach("web-1,web-2")
	code, _, _ = runCtl(t, args(f.ctl(), "jobs", "watch", partial)...)
	require.Equal(t, 2, code)
	running := detach("web-3")
	require.Eventually(t, func() bool { return held.runs.Load() == 1 }, 30*time.Second, 10*time.Millisecond)

	t.Run("list and filters", func(t *testing.T) {
		for _, tt := range []struct {
			flags []string
			want  []string
		}{
			{nil, []string{running, partial, ok}},
			{[]string{"--kind", "health_check"}, []string{running, partial, ok}},
			{[]string{"--state", "partially-failed"}, []string{partial}},
			{[]string{"--state", "running,succeeded"}, []string{running, ok}},
			{[]string{"--node", "web-2"}, []string{partial}},
		} {
			code, stdout, stderr := runCtl(t, args(f.ctl(), append([]string{"jobs", "list"}, tt.flags...)...)...)
			require.Equal(t, 0, code, stderr)
			require.Empty(t, stderr)
			ids, rows := listed(t, stdout)
			require.Equal(t, tt.want, ids, "jobs list %v", tt.flags)
			if slices.Contains(ids, partial) {
				require.Equal(t, []string{"health_check", "partially-failed", "1/1/0/2"}, rows[partial])
			}
		}
		code, stdout, stderr := runCtl(t, args(f.ctl(), "jobs", "list", "--kind", "backup")...)
		require.Equal(t, 0, code, stderr)
		require.Empty(t, stdout)
		require.Equal(t, "no jobs match\n", stderr)
	})

	t.Run("paging", func(t *testing.T) {
		var seen []string
		token := ""
		for range 4 {
			cmd := args(f.ctl(), "jobs", "list", "--limit", "1")
			if token != "" {
				cmd = append(cmd, "--page-token", token)
			}
			code, stdout, stderr := runCtl(t, cmd...)
			require.Equal(t, 0, code, stderr)
			ids, _ := listed(t, stdout)
			require.Len(t, ids, 1)
			seen = append(seen, ids...)
			if stderr == "" {
				break
			}
			m := pageToken.FindStringSubmatch(stderr)
			require.NotNil(t, m, "stderr: %q", stderr)
			token = m[1]
		}
		require.Equal(t, []string{running, partial, ok}, seen, "three pages of one, newest first, then no token")
	})

	t.Run("get", func(t *testing.T) {
		code, stdout, stderr := runCtl(t, args(f.ctl(), "jobs", "get", partial)...)
		require.Equal(t, 0, code, stderr)
		require.Regexp(t, `(?m)^ID:\s+`+partial+`$`, stdout)
		require.Regexp(t, `(?m)^State:\s+partially-failed$`, stdout)
		require.Regexp(t, `(?m)^Target:\s+nodes web-1,web-2$`, stdout)
		requireNodeRow(t, stdout, "web-1", "succeeded", "disk /: ok on web-1", "memory: ok")
		requireNodeRow(t, stdout, "web-2", "failed", "disk /: CRITICAL on web-2", "memory: ok")
		require.NotContains(t, stdout, "History:")

		code, stdout, stderr = runCtl(t, args(f.ctl(), "jobs", "get", partial, "--history")...)
		require.Equal(t, 0, code, stderr)
		_, history := f.job(partial)
		require.NotEmpty(t, history)
		_, events, found := strings.Cut(stdout, "\nHistory:\n")
		require.True(t, found, stdout)
		require.Len(t, seqs(t, events), len(history), "one line per recorded event")
		require.Regexp(t, `(?m)^#\d+ \S+ web-2 failed  planned failure on web-2$`, events)

		code, stdout, stderr = runCtl(t, args(f.ctl(), "jobs", "get", "0123456789abcdef01234567")...)
		require.Equal(t, 1, code)
		require.Empty(t, stdout)
		require.Equal(t, "forlockctl: job not found: 0123456789abcdef01234567\n", stderr)
	})

	t.Run("cancel", func(t *testing.T) {
		code, stdout, stderr := runCtl(t, args(f.ctl(), "jobs", "cancel", running, "--reason", "window over")...)
		require.Equal(t, 0, code, stderr)
		require.True(t, strings.HasPrefix(stdout, "Cancelled job "+running+" (now "), stdout)

		code, _, stderr = runCtl(t, args(f.ctl(), "jobs", "watch", running)...)
		require.Equal(t, 1, code)
		require.Equal(t, "forlockctl: job "+running+" was cancelled: window over\n", stderr)
		got, _ := f.job(running)
		require.Equal(t, forlockv1.JobState_JOB_STATE_CANCELLED, got.GetState())
		require.Equal(t, forlockv1.TaskState_TASK_STATE_CANCELLED, got.GetTasks()[0].GetState())
		require.Eventually(t, held.cancelled.Load, 10*time.Second, 10*time.Millisecond, "the running task was stopped on its node")

		code, stdout, stderr = runCtl(t, args(f.ctl(), "jobs", "cancel", running)...)
		require.Equal(t, 1, code)
		require.Empty(t, stdout)
		require.Equal(t, "forlockctl: job has already ended: "+running+"\n", stderr)
	})
}

func TestCtlWire(t *testing.T) {
	f := checkFleet(t, &check{node: "web-1"})
	conn := f.ctlVia(f.cp.Addr().String())

	t.Run("TLS and the admin token", func(t *testing.T) {
		code, stdout, stderr := runCtl(t, args(conn, "nodes", "get", "web-1")...)
		require.Equal(t, 0, code, stderr)
		require.Regexp(t, `(?m)^Name:\s+web-1$`, stdout)
	})

	t.Run("wrong token is refused", func(t *testing.T) {
		wrong := []byte(f.token)
		if wrong[len(wrong)-1] == 'A' {
			wrong[len(wrong)-1] = 'B'
		} else {
			wrong[len(wrong)-1] = 'A'
		}
		bad := slices.Clone(conn)
		bad[len(bad)-1] = string(wrong)
		code, stdout, stderr := runCtl(t, args(bad, "nodes", "get", "web-1")...)
		require.Equal(t, 1, code)
		require.Empty(t, stdout)
		require.Equal(t, "forlockctl: the token was refused: check --token / FORLOCK_TOKEN or the context (admin token refused)\n", stderr)
	})

	t.Run("control plane of another CA is refused", func(t *testing.T) {
		other := newFleet(t, nil)
		addr := other.cp.Addr().String()
		code, stdout, stderr := runCtl(t, "--addr", addr, "--ca-file", f.caFile, "--token", other.token, "tokens", "create", "-q")
		require.Equal(t, 1, code)
		require.Empty(t, stdout)
		require.True(t, strings.HasPrefix(stderr, "forlockctl: TLS with the control plane at "+addr+" failed: check --ca-file"), stderr)
		tokens, err := other.nodes.ListJoinTokens(other.admin(), &forlockv1.ListJoinTokensRequest{})
		require.NoError(t, err)
		require.Empty(t, tokens.GetTokens(), "no call reached the untrusted control plane")
	})
}
