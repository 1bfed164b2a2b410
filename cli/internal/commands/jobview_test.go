package commands

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/timestamppb"

	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

const (
	tQueued    = forlockv1.TaskState_TASK_STATE_QUEUED
	tRunning   = forlockv1.TaskState_TASK_STATE_RUNNING
	tSucceeded = forlockv1.TaskState_TASK_STATE_SUCCEEDED
	tFailed    = forlockv1.TaskState_TASK_STATE_FAILED
	tSkipped   = forlockv1.TaskState_TASK_STATE_SKIPPED
	tCancelled = forlockv1.TaskState_TASK_STATE_CANCELLED
	tInterrupt = forlockv1.TaskState_TASK_STATE_INTERRUPTED
	jRunning   = forlockv1.JobState_JOB_STATE_RUNNING
	jSucceeded = forlockv1.JobState_JOB_STATE_SUCCEEDED
	jPartial   = forlockv1.JobState_JOB_STATE_PARTIALLY_FAILED
	jFailed    = forlockv1.JobState_JOB_STATE_FAILED
	jCancelled = forlockv1.JobState_JOB_STATE_CANCELLED
)

func task(id, node string, st forlockv1.TaskState) *forlockv1.Task {
	return &forlockv1.Task{Id: id, NodeId: "n-" + node, NodeName: node, State: st}
}

func TestJobExitCode(t *testing.T) {
	tests := []struct {
		state forlockv1.JobState
		code  int
		msg   string
	}{
		{jSucceeded, ExitOK, ""},
		{jPartial, 2, "job j1 partially failed: 1 of 3 tasks succeeded"},
		{jFailed, ExitFailure, "job j1 failed: none of its 3 tasks succeeded"},
		{jCancelled, ExitFailure, "job j1 was cancelled: maintenance window over"},
		{jRunning, ExitFailure, "job j1 has not ended (state running)"},
		{forlockv1.JobState_JOB_STATE_UNSPECIFIED, ExitFailure, "has not ended (state unknown)"},
	}
	for _, tt := range tests {
		t.Run(jobStateName(tt.state), func(t *testing.T) {
			require.Equal(t, tt.code, jobExitCode(tt.state))
			j := &forlockv1.Job{Id: "j1", State: tt.state, CancelReason: "maintenance window over",
				Tasks: []*forlockv1.Task{task("t1", "a", tSucceeded), task("t2", "b", tFailed), task("t3", "c", tSkipped)}}
			err := jobResult(j)
			if tt.code == ExitOK {
				require.NoError(t, err)
				return
			}
			var ee *exitError
			require.ErrorAs(t, err, &ee)
			require.Equal(t, tt.code, ee.code)
			require.ErrorContains(t, err, tt.msg)
		})
	}
}

func TestCountTasks(t *testing.T) {
	c := countTasks([]*forlockv1.Task{
		task("1", "a", tSucceeded), task("2", "b", tSucceeded), task("3", "c", tFailed), task("4", "d", tInterrupt),
		task("5", "e", tSkipped), task("6", "f", tCancelled), task("7", "g", tRunning), task("8", "h", tQueued),
	})
	require.Equal(t, "2/2/2/8", c.String())
}

func TestEventLine(t *testing.T) {
	at := timestamppb.New(time.Date(2026, 3, 1, 12, 0, 3, 0, time.UTC))
	tests := []struct {
		name string
		ev   *forlockv1.JobEvent
		want string
	}{
		{"transition", &forlockv1.JobEvent{Seq: 3, At: at, TaskId: "t1", NodeName: "web-1", TaskState: tRunning},
			"#3 12:00:03Z web-1 running"},
		{"progress", &forlockv1.JobEvent{Seq: 4, At: at, TaskId: "t1", NodeName: "web-1", TaskState: tRunning,
			Progress: &forlockv1.Progress{Phase: "dump postgres", Percent: 42, BytesDone: 3 << 29, BytesTotal: 3 << 30, Message: "table users"}},
			"#4 12:00:03Z web-1 running  dump postgres 42% 1.5 GiB/3.0 GiB table users"},
		{"failure message on one line", &forlockv1.JobEvent{Seq: 5, At: at, TaskId: "t2", NodeName: "web-2", TaskState: tFailed,
			Message: "disk: 97% used\nmemory: ok"}, "#5 12:00:03Z web-2 failed  disk: 97% used memory: ok"},
		{"job level", &forlockv1.JobEvent{Seq: 9, At: at, JobState: jPartial, Message: "1 of 2 tasks failed"},
			"#9 12:00:03Z job partially-failed  1 of 2 tasks failed"},
		{"no time", &forlockv1.JobEvent{Seq: 1, TaskId: "t1", NodeName: "web-1", TaskState: tQueued}, "#1 --:--:-- web-1 queued"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, eventLine(tt.ev))
		})
	}
}

func TestHumanBytes(t *testing.T) {
	for n, want := range map[uint64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 1536 << 10: "1.5 MiB", 5 << 40: "5.0 TiB"} {
		require.Equal(t, want, humanBytes(n))
	}
}

func TestPrintTaskTableWithDetails(t *testing.T) {
	a := task("t1", "web-1", tSucceeded)
	a.Message = "3 checks ok"
	a.Details = []string{"disk /: ok, 42% used", "memory: ok, 2.1 GiB available", "load: ok"}
	a.Canary = true
	b := task("t2", "db-primary", tFailed)
	b.Message = "1 of 3 checks failed"
	b.Details = []string{"disk /: FAIL, 97% used"}
	c := task("t3", "web-3", tSkipped)
	c.Message = "node offline"
	var out bytes.Buffer
	require.NoError(t, printTaskTable(&out, []*forlockv1.Task{a, b, c}))
	want := `NODE            STATE      PROGRESS  MESSAGE
web-1 (canary)  succeeded  -         3 checks ok
    disk /: ok, 42% used
    memory: ok, 2.1 GiB available
    load: ok
db-primary      failed     -         1 of 3 checks failed
    disk /: FAIL, 97% used
web-3           skipped    -         node offline
`
	require.Equal(t, want, out.String())
}

func TestPrintJobTableAndDetail(t *testing.T) {
	j := &forlockv1.Job{Id: "j-01", Kind: "health_check", State: jPartial,
		CreatedAt: timestamppb.New(renderNow.Add(-3 * time.Minute)), FinishedAt: timestamppb.New(renderNow.Add(-2 * time.Minute)),
		Deadline: timestamppb.New(renderNow.Add(57 * time.Minute)),
		Target:   &forlockv1.Target{LabelSelector: "env=prod"},
		Rollout:  &forlockv1.Rollout{MaxParallel: 5, Canary: 1, OfflinePolicy: forlockv1.OfflinePolicy_OFFLINE_POLICY_SKIP},
		Tasks:    []*forlockv1.Task{task("t1", "web-1", tSucceeded), task("t2", "web-2", tFailed)}}
	var out bytes.Buffer
	require.NoError(t, printJobTable(&out, renderNow, []*forlockv1.Job{j}))
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	require.Equal(t, []string{"ID", "KIND", "STATE", "TASKS", "CREATED", "BY"}, strings.Fields(lines[0]))
	require.Equal(t, []string{"j-01", "health_check", "partially-failed", "1/1/0/2", "3m", "ago", "-"}, strings.Fields(lines[1]))

	out.Reset()
	require.NoError(t, printJobDetail(&out, renderNow, j))
	for _, line := range []string{
		"ID:          j-01\n",
		"State:       partially-failed\n",
		"Tasks:       1/1/0/2 (ok/failed/skipped/total)\n",
		"Target:      nodes matching env=prod\n",
		"Rollout:     max parallel 5, canary 1, offline nodes: skip\n",
		"Finished:    2026-03-01 11:58:00 UTC (2m ago)\n",
		"Created by:  - (the control plane: a schedule or policy; or a job older than identities)\n",
		"\nNODE   STATE      PROGRESS  MESSAGE\n",
		"web-2  failed     -         -\n",
	} {
		require.Contains(t, out.String(), line)
	}
}

// TestJobSubmitter: jobs list and jobs get show who submitted a job, the
// scope its nodes were chosen in and the reason given; a job without a
// submitter says so instead of showing an empty name.
func TestJobSubmitter(t *testing.T) {
	j := &forlockv1.Job{Id: "j-02", Kind: "backup", State: jRunning, CreatedAt: timestamppb.New(renderNow.Add(-time.Minute)),
		CreatedBy: "junior", Scope: "env=staging", Reason: "CHG-42\nnightly  check",
		Tasks: []*forlockv1.Task{task("t1", "stg-1", tRunning)}}
	var out bytes.Buffer
	require.NoError(t, printJobTable(&out, renderNow, []*forlockv1.Job{j}))
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	require.Equal(t, []string{"j-02", "backup", "running", "0/0/0/1", "1m", "ago", "junior"}, strings.Fields(lines[1]))

	out.Reset()
	require.NoError(t, printJobDetail(&out, renderNow, j))
	require.Contains(t, out.String(), "Created by:  junior (scope env=staging)\n")
	require.Contains(t, out.String(), "Reason:      CHG-42 nightly check\n", "a reason stays on one line")

	j.Scope, j.Reason = "", ""
	out.Reset()
	require.NoError(t, printJobDetail(&out, renderNow, j))
	require.Contains(t, out.String(), "Created by:  junior\n")
	require.NotContains(t, out.String(), "Reason:")
}

func TestLineView(t *testing.T) {
	var out, errOut bytes.Buffer
	v := &lineView{out: &out, errW: &errOut, id: "j-01"}
	snap := &forlockv1.Job{Id: "j-01", Kind: "health_check", State: jRunning,
		Tasks: []*forlockv1.Task{task("t1", "web-1", tQueued), task("t2", "web-2", tQueued)}}
	v.snapshot(snap)
	v.event(&forlockv1.JobEvent{Seq: 1, TaskId: "t1", NodeName: "web-1", TaskState: tRunning})
	v.retrying(errors.New("unavailable"), 500*time.Millisecond)
	v.snapshot(snap) // a re-watch prints no second header
	v.event(&forlockv1.JobEvent{Seq: 2, TaskId: "t1", NodeName: "web-1", TaskState: tSucceeded, Message: "ok"})
	require.Equal(t, "job j-01 health_check on 2 nodes: running, tasks ok/failed/skipped/total 0/0/0/2\n"+
		"#1 --:--:-- web-1 running\n"+
		"#2 --:--:-- web-1 succeeded  ok\n", out.String())
	require.Equal(t, "forlockctl: watch of job j-01 broke (unavailable); watching again in 500ms\n", errOut.String())
}

func TestStatusBlock(t *testing.T) {
	j := &forlockv1.Job{Id: "j-01", Kind: "health_check", State: jRunning, Tasks: []*forlockv1.Task{
		task("t1", "web-1", tSucceeded), task("t2", "db-primary", tRunning), task("t3", "web-3", tQueued),
	}}
	j.Tasks[1].Progress = &forlockv1.Progress{Phase: "disk", Percent: 50}
	j.Tasks[1].Message = "checking"
	require.Equal(t, []string{
		"job j-01 health_check: running, tasks ok/failed/skipped/total 1/0/0/3",
		"  web-1       succeeded",
		"  db-primary  running      disk 50%  checking",
		"  web-3       queued",
	}, statusBlock(j, 10))

	// Too small for all: running, then failed, then queued; the rest counted.
	big := &forlockv1.Job{Id: "j-02", State: jRunning}
	for i, st := range []forlockv1.TaskState{tSucceeded, tQueued, tRunning, tSucceeded, tFailed, tQueued, tSkipped} {
		big.Tasks = append(big.Tasks, task(string(rune('a'+i)), "n"+string(rune('a'+i)), st))
	}
	require.Equal(t, []string{
		"job j-02 -: running, tasks ok/failed/skipped/total 2/1/1/7",
		"  nb  queued",
		"  nc  running",
		"  ne  failed",
		"  ... and 4 more: queued 1, succeeded 2, skipped 1",
	}, statusBlock(big, 5))
}

func TestTTYViewRedrawsInPlace(t *testing.T) {
	var out bytes.Buffer
	v := &ttyView{out: &out, size: func() (int, int) { return 40, 24 }}
	v.model.snapshot(&forlockv1.Job{Id: "j-01", Kind: "health_check", State: jRunning,
		Tasks: []*forlockv1.Task{task("t1", "web-1", tQueued)}})
	v.draw()
	first := out.String()
	require.Equal(t, "job j-01 health_check: running, tasks …\n  web-1  queued\n", first, "lines are cut to the width")

	out.Reset()
	v.model.apply(&forlockv1.JobEvent{Seq: 1, TaskId: "t1", TaskState: tRunning, Progress: &forlockv1.Progress{Percent: 10}})
	v.note = "watch broke (x); watching again in 1s"
	v.draw()
	require.Equal(t, "\r\x1b[2A\x1b[J"+"job j-01 health_check: running, tasks …\n  web-1  running      10%\n(watch broke (x); watching again in 1s)\n", out.String())

	out.Reset()
	v.clear()
	require.Equal(t, "\r\x1b[3A\x1b[J", out.String())
}

func TestTTYViewStops(t *testing.T) {
	var out syncBuffer
	v := newTTYView(&out, func() (int, int) { return 80, 24 })
	v.snapshot(&forlockv1.Job{Id: "j-01", State: jRunning, Tasks: []*forlockv1.Task{task("t1", "web-1", tQueued)}})
	v.event(&forlockv1.JobEvent{Seq: 1, TaskId: "t1", TaskState: tSucceeded, JobState: jSucceeded})
	v.stop(false)
	require.Contains(t, out.String(), "web-1  succeeded", "stop without erase draws the latest state")
}
