package jobs

import (
	"bytes"
	"log/slog"
	"slices"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

func TestOutcomeCountsAndLogs(t *testing.T) {
	pb := &forlockv1.Job{Id: "j1", Kind: "backup", State: forlockv1.JobState_JOB_STATE_PARTIALLY_FAILED, Tasks: []*forlockv1.Task{
		{NodeId: "n1", NodeName: "web-1", State: forlockv1.TaskState_TASK_STATE_SUCCEEDED},
		{NodeId: "n2", NodeName: "web-2", State: forlockv1.TaskState_TASK_STATE_INTERRUPTED},
		{NodeId: "n3", NodeName: "web-3", State: forlockv1.TaskState_TASK_STATE_SKIPPED},
	}}
	o := outcome(pb)
	require.Equal(t, 1, o.Succeeded)
	require.Equal(t, 1, o.Failed)
	require.Equal(t, []TaskOutcome{
		{NodeID: "n1", NodeName: "web-1", State: forlockv1.TaskState_TASK_STATE_SUCCEEDED},
		{NodeID: "n2", NodeName: "web-2", State: forlockv1.TaskState_TASK_STATE_INTERRUPTED, Failed: true},
		{NodeID: "n3", NodeName: "web-3", State: forlockv1.TaskState_TASK_STATE_SKIPPED},
	}, o.Tasks)

	var buf bytes.Buffer
	logOutcome(slog.New(slog.NewTextHandler(&buf, nil)), o)
	require.Contains(t, buf.String(), `level=WARN msg="job ended" job=j1 kind=backup outcome="partially failed" tasks=3 succeeded=1 failed=1`)
	buf.Reset()
	o.State = forlockv1.JobState_JOB_STATE_SUCCEEDED
	logOutcome(slog.New(slog.NewTextHandler(&buf, nil)), o)
	require.Contains(t, buf.String(), `level=INFO msg="job ended" job=j1`)
}

type outcomes struct {
	mu  sync.Mutex
	got []Outcome
}

func (o *outcomes) JobOutcome(x Outcome) { o.mu.Lock(); defer o.mu.Unlock(); o.got = append(o.got, x) }

func (o *outcomes) all() []Outcome { o.mu.Lock(); defer o.mu.Unlock(); return slices.Clone(o.got) }

// A task the agent reports failed ends its job, and the Outcomes observer
// hears of it once, with the task's node.
func TestEngineReportsOutcomes(t *testing.T) {
	obs := &outcomes{}
	f := startFleet(t, enrolledStore(t, "web-1"), Config{Outcomes: obs})
	s := f.connect("web-1")
	jobID, taskID := f.submit("web-1")
	f.running(s, jobID, taskID)
	f.e.TaskUpdate(s, update(taskID, forlockv1.TaskState_TASK_STATE_FAILED, "boom"))
	f.ended(jobID)
	got := obs.all()
	require.Len(t, got, 1)
	o := got[0]
	require.Equal(t, jobID, o.JobID)
	require.Equal(t, "health_check", o.Kind)
	require.Equal(t, forlockv1.JobState_JOB_STATE_FAILED, o.State)
	require.False(t, o.At.IsZero())
	require.Equal(t, []TaskOutcome{{NodeID: f.nodes["web-1"].ID, NodeName: "web-1", State: forlockv1.TaskState_TASK_STATE_FAILED, Failed: true}}, o.Tasks)
	require.Equal(t, 1, o.Failed)
}
