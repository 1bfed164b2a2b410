package jobs

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/forlock/fleet/controlplane/internal/store"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// TestCommitWritesWhatChanged: a commit carries a durable job's own
// record only when its own fields changed, and only the tasks that
// changed, as copies; a job not yet durable goes whole; a failed commit
// puts the same marks back for the retry.
func TestCommitWritesWhatChanged(t *testing.T) {
	pb := &forlockv1.Job{Id: "18edc667f200f7cd16eb6a94", State: forlockv1.JobState_JOB_STATE_RUNNING}
	for i := range 3 {
		pb.Tasks = append(pb.Tasks, &forlockv1.Task{Id: fmt.Sprintf("%s-%05d", pb.GetId(), i), State: forlockv1.TaskState_TASK_STATE_QUEUED})
	}
	e := &Engine{jobs: map[string]*job{}, keys: map[string]string{}, dirty: map[string]*job{}, wake: make(chan struct{}, 1),
		late: map[string]string{}, lateAdd: map[string]string{}}
	j := newJob(pb)
	e.jobs[pb.GetId()] = j

	rec, tasks := j.changes()
	require.Len(t, rec.GetTasks(), 3, "not durable yet: the whole job")
	require.Empty(t, tasks)
	j.durable = true

	// A task starts: the job stays running, so one task record and no job
	// record.
	e.setTask(j, pb.GetTasks()[1], running, "running")
	rec, tasks = j.changes()
	require.Nil(t, rec)
	require.Len(t, tasks, 1)
	require.Equal(t, 1, tasks[0].Position)
	require.True(t, proto.Equal(pb.GetTasks()[1], tasks[0].Task))
	require.NotSame(t, pb.GetTasks()[1], tasks[0].Task, "a copy: the commit encodes it outside the lock")
	rec, tasks = j.changes()
	require.Nil(t, rec, "the marks are reset")
	require.Empty(t, tasks)

	// A cancel request changes the job's own record (without its tasks).
	pb.CancelReason = "stop"
	e.record(j, nil, "cancel requested", nil)
	rec, tasks = j.changes()
	require.Equal(t, "stop", rec.GetCancelReason())
	require.Empty(t, rec.GetTasks())
	require.Len(t, pb.GetTasks(), 3, "the live job keeps its tasks")
	require.Empty(t, tasks)

	// The last tasks end: two task records and the job's record (its
	// state changed); a failed commit marks the same again.
	e.setTask(j, pb.GetTasks()[0], forlockv1.TaskState_TASK_STATE_CANCELLED, "cancelled")
	e.setTask(j, pb.GetTasks()[1], forlockv1.TaskState_TASK_STATE_CANCELLED, "cancelled")
	e.setTask(j, pb.GetTasks()[2], forlockv1.TaskState_TASK_STATE_CANCELLED, "cancelled")
	rec, tasks = j.changes()
	require.Equal(t, forlockv1.JobState_JOB_STATE_CANCELLED, rec.GetState())
	require.Len(t, tasks, 3)
	e.putBack(store.JobWrite{Jobs: []*forlockv1.Job{rec}, Tasks: tasks}, map[string]*job{pb.GetId(): j}, nil, store.ErrDiskFull)
	rec2, tasks2 := j.changes()
	require.True(t, proto.Equal(rec, rec2))
	require.Len(t, tasks2, 3)
}
