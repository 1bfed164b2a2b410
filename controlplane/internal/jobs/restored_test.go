package jobs

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/forlock/fleet/controlplane/internal/store"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// TestMarkUnknown: after a restore, every task that had not ended at the
// snapshot is UNKNOWN with a message naming the snapshot, its job ended
// (failed or partially failed, never running), the history says so, and
// an engine started on the database has nothing to dispatch. An ended job
// is left alone.
func TestMarkUnknown(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "fleet.db"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	task := func(id string, s forlockv1.TaskState) *forlockv1.Task {
		return &forlockv1.Task{Id: id, NodeId: "node-" + id, NodeName: "n-" + id, State: s}
	}
	running := &forlockv1.Job{Id: "job-1", Kind: "backup", State: forlockv1.JobState_JOB_STATE_RUNNING, CreatedAt: timestamppb.Now(),
		Tasks: []*forlockv1.Task{task("a", forlockv1.TaskState_TASK_STATE_SUCCEEDED), task("b", forlockv1.TaskState_TASK_STATE_RUNNING),
			task("c", forlockv1.TaskState_TASK_STATE_DISPATCHED), task("d", forlockv1.TaskState_TASK_STATE_QUEUED)}}
	ended := &forlockv1.Job{Id: "job-0", Kind: "backup", State: forlockv1.JobState_JOB_STATE_SUCCEEDED, CreatedAt: timestamppb.Now(),
		Tasks: []*forlockv1.Task{task("z", forlockv1.TaskState_TASK_STATE_SUCCEEDED)}}
	require.NoError(t, st.SaveJobs(store.JobWrite{Jobs: []*forlockv1.Job{running, ended},
		Events: []store.JobEventRecord{{JobID: "job-1", Event: &forlockv1.JobEvent{Seq: 1, Message: "submitted"}}}}))

	takenAt := time.Date(2026, 12, 3, 2, 15, 0, 0, time.UTC)
	n, err := MarkUnknown(st, takenAt)
	require.NoError(t, err)
	require.Equal(t, 3, n)

	active, err := st.ActiveJobs()
	require.NoError(t, err)
	require.Empty(t, active, "no job is left to dispatch")
	var got []*forlockv1.Job
	require.NoError(t, st.ScanJobs("", func(j *forlockv1.Job) bool { got = append(got, j); return true }))
	require.Len(t, got, 2)
	j := got[0]
	require.Equal(t, "job-1", j.GetId())
	require.Equal(t, forlockv1.JobState_JOB_STATE_PARTIALLY_FAILED, j.GetState())
	require.Equal(t, forlockv1.TaskState_TASK_STATE_SUCCEEDED, j.GetTasks()[0].GetState())
	for _, tk := range j.GetTasks()[1:] {
		require.Equal(t, forlockv1.TaskState_TASK_STATE_UNKNOWN, tk.GetState(), tk.GetId())
		require.Contains(t, tk.GetMessage(), "snapshot was taken at 2026-12-03T02:15:00Z")
		require.NotNil(t, tk.GetFinishedAt())
	}
	require.Equal(t, forlockv1.JobState_JOB_STATE_SUCCEEDED, got[1].GetState(), "an ended job is untouched")

	evs, err := st.JobEvents("job-1")
	require.NoError(t, err)
	require.Len(t, evs, 5, "submitted, three unknown tasks, job ended")
	for i, ev := range evs {
		require.EqualValues(t, i+1, ev.GetSeq(), "sequence numbers continue the history")
	}
	require.Equal(t, "job ended: partially failed", evs[4].GetMessage())

	late, err := st.LateTasks()
	require.NoError(t, err)
	require.Equal(t, map[string]string{"b": "node-b", "c": "node-c", "d": "node-d"}, late, "each awaits the result its agent may hold")

	e, err := New(Config{Store: st})
	require.NoError(t, err)
	require.Empty(t, e.jobs, "the engine loads nothing to dispatch")
}

// TestUnknownTaskTakesItsLateResult: a task marked unknown after a restore
// takes the result its agent still holds when the node reconnects, as a
// late result; another node cannot claim it.
func TestUnknownTaskTakesItsLateResult(t *testing.T) {
	st := enrolledStore(t, "web1", "web2")
	task := &forlockv1.Task{Id: "0123456789abcdef01234567-00000", NodeId: "id-web1", NodeName: "web1", State: forlockv1.TaskState_TASK_STATE_RUNNING}
	job := &forlockv1.Job{Id: "0123456789abcdef01234567", Kind: "health_check", State: forlockv1.JobState_JOB_STATE_RUNNING,
		CreatedAt: timestamppb.Now(), Tasks: []*forlockv1.Task{task}}
	require.NoError(t, st.SaveJobs(store.JobWrite{Jobs: []*forlockv1.Job{job}}))
	n, err := MarkUnknown(st, time.Now())
	require.NoError(t, err)
	require.Equal(t, 1, n)

	f := startFleet(t, st, Config{})
	s2 := f.connect("web2")
	f.e.TaskUpdate(s2, update(task.GetId(), succeeded, "not mine"))
	f.flush()
	got, err := f.e.Get(job.GetId())
	require.NoError(t, err)
	require.Equal(t, forlockv1.TaskState_TASK_STATE_UNKNOWN, got.GetTasks()[0].GetState())

	s1 := f.connect("web1")
	f.e.TaskUpdate(s1, update(task.GetId(), succeeded, "ran after the snapshot"))
	f.flush()
	got, err = f.e.Get(job.GetId())
	require.NoError(t, err)
	require.Equal(t, succeeded, got.GetTasks()[0].GetState())
	require.Equal(t, "late result: ran after the snapshot", got.GetTasks()[0].GetMessage())
	require.Equal(t, forlockv1.JobState_JOB_STATE_SUCCEEDED, got.GetState())
}
