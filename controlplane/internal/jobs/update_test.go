package jobs

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

const (
	running   = forlockv1.TaskState_TASK_STATE_RUNNING
	succeeded = forlockv1.TaskState_TASK_STATE_SUCCEEDED
	failedS   = forlockv1.TaskState_TASK_STATE_FAILED
)

// TestHostileUpdatesReadNothing: updates naming another node's task, or a
// task of a finished job, are answered from memory: zero bbolt reads. The
// positive twin, a late result for a task the control plane cancelled
// while its node was away, does load its ended job, so the counter counts.
func TestHostileUpdatesReadNothing(t *testing.T) {
	f := newFleet(t, Limits{}, "web1", "web2")
	s1, s2 := f.connect("web1"), f.connect("web2")

	liveJob, liveTask := f.submit("web1")
	f.running(s1, liveJob, liveTask)
	doneJob, doneTask := f.submit("web1")
	f.running(s1, doneJob, doneTask)
	f.e.TaskUpdate(s1, update(doneTask, succeeded, "ok"))
	f.ended(doneJob)
	f.flush()
	acks(s1)
	acks(s2)

	before := f.st.Reads()
	for range 200 {
		// web2 reports on web1's live task: progress, and a result.
		f.e.TaskUpdate(s2, update(liveTask, running, "not yours"))
		f.e.TaskUpdate(s2, update(liveTask, failedS, "not yours"))
		// Both nodes report on the finished job's task.
		f.e.TaskUpdate(s1, update(doneTask, running, "again"))
		f.e.TaskUpdate(s1, update(doneTask, failedS, "changed my mind"))
		f.e.TaskUpdate(s2, update(doneTask, running, "again"))
		f.e.TaskUpdate(s2, update(doneTask, succeeded, "mine"))
		// A task of a job that never was.
		f.e.TaskUpdate(s2, update("0123456789abcdef01234567-00000", succeeded, "?"))
	}
	f.flush()
	require.Equal(t, before, f.st.Reads(), "hostile updates read nothing from bbolt")

	require.Equal(t, running, f.taskState(liveJob), "another node's result changed nothing")
	got, err := f.e.Get(doneJob)
	require.NoError(t, err)
	require.Equal(t, succeeded, got.GetTasks()[0].GetState(), "a finished task stays finished")
	require.Equal(t, "ok", got.GetTasks()[0].GetMessage())
	require.NotContains(t, acks(s2), liveTask, "no ack for another node's task")
	require.Contains(t, acks(s1), doneTask, "a result for a finished task is acknowledged: the agent forgets it")

	t.Run("late result loads its job", func(t *testing.T) {
		lateJob, lateTask := f.submit("web2")
		f.running(s2, lateJob, lateTask)
		f.reg.Detach(s2, true) // web2 goes away mid-task
		_, err := f.e.Cancel(context.Background(), lateJob, "")
		require.NoError(t, err)
		f.ended(lateJob)
		f.flush()

		// web1 cannot claim it; web2, back, reports it ran.
		before := f.st.Reads()
		f.e.TaskUpdate(s1, update(lateTask, succeeded, "not mine"))
		f.flush()
		require.Equal(t, before, f.st.Reads())
		s2b := f.connect("web2")
		f.e.TaskUpdate(s2b, update(lateTask, succeeded, "ran while away"))
		f.flush()
		require.Greater(t, f.st.Reads(), before, "the late result loaded its ended job")
		got, err := f.e.Get(lateJob)
		require.NoError(t, err)
		require.Equal(t, succeeded, got.GetTasks()[0].GetState())
		require.Equal(t, "late result: ran while away", got.GetTasks()[0].GetMessage())
		require.Contains(t, acks(s2b), lateTask)

		// Recorded once: the index entry is gone, so a resend is acked
		// from memory.
		before = f.st.Reads()
		f.e.TaskUpdate(s2b, update(lateTask, failedS, "resent"))
		f.flush()
		require.Equal(t, before, f.st.Reads())
		late, err := f.st.LateTasks()
		require.NoError(t, err)
		require.Empty(t, late, "the late index entry was deleted with the result")
	})
}

// TestProgressCoalesced: a flood of progress keeps the live progress current
// but stores about one event per task per second, with a capped message.
func TestProgressCoalesced(t *testing.T) {
	f := newFleet(t, Limits{}, "web1")
	s := f.connect("web1")
	jobID, taskID := f.submit("web1")
	f.running(s, jobID, taskID)
	f.flush()
	_, evs, err := f.e.GetWithHistory(jobID)
	require.NoError(t, err)
	base := len(evs)

	// 4 KiB messages of three-byte runes: the cap at 512 bytes falls inside
	// a rune.
	big := strings.Repeat("€", 4096/3)
	start := time.Now()
	for i := range 5000 {
		f.e.TaskUpdate(s, &forlockv1.TaskUpdate{TaskId: taskID, State: running,
			Progress: &forlockv1.Progress{Phase: "dump", BytesDone: uint64(i), Message: big}})
	}
	elapsed := time.Since(start)
	f.flush()

	got, evs, err := f.e.GetWithHistory(jobID)
	require.NoError(t, err)
	p := got.GetTasks()[0].GetProgress()
	require.Equal(t, uint64(4999), p.GetBytesDone(), "the live progress follows every report")
	stored := len(evs) - base
	require.GreaterOrEqual(t, stored, 1, "progress is stored")
	require.LessOrEqual(t, stored, int(elapsed/time.Second)+1, "at most one progress event a second (%d in %s)", stored, elapsed)
	require.Len(t, p.GetMessage(), 510, "cut at 512 bytes, back to a rune boundary")
	require.Equal(t, strings.Repeat("€", 170), p.GetMessage(), "whole runes only")
	for _, ev := range evs[base:] {
		require.LessOrEqual(t, len(ev.GetMessage()), 512)
	}
	stEvs, err := f.st.JobEvents(jobID)
	require.NoError(t, err)
	require.Len(t, stEvs, len(evs), "the store holds what memory holds")
}

// TestEventCapSamplesProgress: past a job's event cap, progress is sampled
// and state changes are still all stored.
func TestEventCapSamplesProgress(t *testing.T) {
	f := newFleet(t, Limits{ProgressInterval: time.Nanosecond, EventsPerJob: 10, EventsPerTask: 1, SampleEvery: 100}, "web1")
	s := f.connect("web1")
	jobID, taskID := f.submit("web1")
	f.running(s, jobID, taskID)
	for range 1000 {
		f.e.TaskUpdate(s, update(taskID, running, "tick"))
		time.Sleep(time.Microsecond) // a nanosecond apart at least
	}
	f.flush()
	_, evs, err := f.e.GetWithHistory(jobID)
	require.NoError(t, err)
	// 11 is the cap; past it one in 100 of the ~990 further reports.
	require.GreaterOrEqual(t, len(evs), 11+9)
	require.LessOrEqual(t, len(evs), 11+10)

	f.e.TaskUpdate(s, update(taskID, succeeded, "done"))
	f.ended(jobID)
	evs, err = f.st.JobEvents(jobID)
	require.NoError(t, err)
	last := evs[len(evs)-2:]
	require.Equal(t, succeeded, last[0].GetTaskState(), "the result is stored past the cap")
	require.Equal(t, "job ended: succeeded", last[1].GetMessage())
}

func TestTruncate(t *testing.T) {
	require.Equal(t, "abc", truncate("abc", 3))
	require.Equal(t, "ab", truncate("abc", 2))
	require.Equal(t, "a", truncate("aé", 2), "é is two bytes: not split")
	require.Equal(t, "aé", truncate("aé", 3))
	require.Empty(t, truncate("€", 2))
}
