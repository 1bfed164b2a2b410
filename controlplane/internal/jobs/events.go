package jobs

import (
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/forlock/fleet/controlplane/internal/store"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

func terminal(s forlockv1.TaskState) bool {
	switch s {
	case forlockv1.TaskState_TASK_STATE_SUCCEEDED, forlockv1.TaskState_TASK_STATE_FAILED,
		forlockv1.TaskState_TASK_STATE_CANCELLED, forlockv1.TaskState_TASK_STATE_INTERRUPTED,
		forlockv1.TaskState_TASK_STATE_SKIPPED, forlockv1.TaskState_TASK_STATE_ROLLED_BACK,
		forlockv1.TaskState_TASK_STATE_UNKNOWN:
		return true
	}
	return false
}

// failed reports the states that count against stop-after-failures.
func failed(s forlockv1.TaskState) bool {
	return s == forlockv1.TaskState_TASK_STATE_FAILED || s == forlockv1.TaskState_TASK_STATE_INTERRUPTED ||
		s == forlockv1.TaskState_TASK_STATE_ROLLED_BACK || s == forlockv1.TaskState_TASK_STATE_UNKNOWN
}

// deriveState computes a job's state from its tasks.
func deriveState(pb *forlockv1.Job) forlockv1.JobState {
	succeeded := 0
	for _, t := range pb.GetTasks() {
		if !terminal(t.GetState()) {
			return forlockv1.JobState_JOB_STATE_RUNNING
		}
		if t.GetState() == forlockv1.TaskState_TASK_STATE_SUCCEEDED {
			succeeded++
		}
	}
	switch {
	case pb.GetCancelReason() != "":
		return forlockv1.JobState_JOB_STATE_CANCELLED
	case succeeded == len(pb.GetTasks()):
		return forlockv1.JobState_JOB_STATE_SUCCEEDED
	case succeeded > 0:
		return forlockv1.JobState_JOB_STATE_PARTIALLY_FAILED
	}
	return forlockv1.JobState_JOB_STATE_FAILED
}

// setTask moves a task to a new state and records the event. Callers hold
// e.mu.
func (e *Engine) setTask(j *job, t *forlockv1.Task, state forlockv1.TaskState, msg string) {
	now := timestamppb.Now()
	t.State, t.Message, t.UpdatedAt = state, msg, now
	if state == forlockv1.TaskState_TASK_STATE_RUNNING && t.StartedAt == nil {
		t.StartedAt = now
	}
	if terminal(state) {
		t.FinishedAt = now
		t.Progress = nil
		if e.obs != nil {
			var ran time.Duration
			if t.GetStartedAt() != nil {
				ran = now.AsTime().Sub(t.GetStartedAt().AsTime())
			}
			e.obs.TaskEnded(j.pb.GetKind(), state.String(), ran)
		}
	}
	e.record(j, t, msg, nil)
}

// record appends an event to the job's history (task may be nil for job
// events), refreshes the job's derived state and wakes watchers. When the job
// has ended it leaves the active set. Callers hold e.mu.
func (e *Engine) record(j *job, t *forlockv1.Task, msg string, progress *forlockv1.Progress) {
	before := j.pb.GetState()
	j.pb.State = deriveState(j.pb)
	ev := &forlockv1.JobEvent{
		Seq: uint64(len(j.events)) + 1, At: timestamppb.New(time.Now()),
		Message: msg, Progress: proto.CloneOf(progress), JobState: j.pb.GetState(),
	}
	if t != nil {
		ev.TaskId, ev.NodeName, ev.TaskState = t.GetId(), t.GetNodeName(), t.GetState()
	}
	e.appendEvent(j, ev)
	if before == forlockv1.JobState_JOB_STATE_RUNNING && j.pb.GetState() != forlockv1.JobState_JOB_STATE_RUNNING {
		j.pb.FinishedAt = timestamppb.Now()
		if e.obs != nil {
			e.obs.JobEnded(j.pb.GetKind(), j.pb.GetState().String())
		}
		o := outcome(j.pb)
		logOutcome(e.log, o)
		if e.outcomes != nil {
			e.outcomes.JobOutcome(o)
		}
		e.appendEvent(j, &forlockv1.JobEvent{
			Seq: uint64(len(j.events)) + 1, At: j.pb.GetFinishedAt(),
			Message: "job ended: " + stateWord(j.pb.GetState()), JobState: j.pb.GetState(),
		})
		// Readers fall back to the store for jobs not in memory: keep this
		// one until its final state is committed.
		id, key := j.pb.GetId(), j.pb.GetIdempotencyKey()
		e.markDirty(j, true, t)
		e.afterCommit(func() {
			e.mu.Lock()
			delete(e.jobs, id)
			delete(e.keys, key) // the store answers for it from now on
			e.mu.Unlock()
		})
		return
	}
	// The job's own record changes with its state, and with a job event
	// (a submit or a cancel request); a task event changes the task.
	e.markDirty(j, t == nil || j.pb.GetState() != before, t)
}

func (e *Engine) appendEvent(j *job, ev *forlockv1.JobEvent) {
	j.events = append(j.events, ev)
	e.events = append(e.events, store.JobEventRecord{JobID: j.pb.GetId(), Event: ev})
	close(j.notify)
	j.notify = make(chan struct{})
}

func stateWord(s forlockv1.JobState) string {
	switch s {
	case forlockv1.JobState_JOB_STATE_SUCCEEDED:
		return "succeeded"
	case forlockv1.JobState_JOB_STATE_PARTIALLY_FAILED:
		return "partially failed"
	case forlockv1.JobState_JOB_STATE_FAILED:
		return "failed"
	case forlockv1.JobState_JOB_STATE_CANCELLED:
		return "cancelled"
	}
	return "running"
}
