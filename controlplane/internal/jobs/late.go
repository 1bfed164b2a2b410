package jobs

import (
	"github.com/forlock/fleet/controlplane/internal/registry"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// A late result is the one result taken for a job that has ended: the
// control plane cancelled a task that was dispatched or running while its
// node was unreachable, the job ended, and then the node came back and
// reported that it did run the task. Such tasks are few and known in
// advance, so they are kept in an index (bucket late_tasks, task ID ->
// node ID, loaded into e.late at start, written in the same commit as the
// cancellation, deleted in the commit that records the result). Only a
// terminal update from the task's own node for a task in that index loads
// the ended job from bbolt, and it does so outside the engine lock: a
// reload never holds up submits and other nodes' updates. Every other
// update naming an ended job is answered from memory.

// expectLate adds a task the control plane just closed to the index.
// Callers hold e.mu.
func (e *Engine) expectLate(t *forlockv1.Task) {
	e.late[t.GetId()] = t.GetNodeId()
	e.lateAdd[t.GetId()] = t.GetNodeId()
}

// lateLanded removes a task from the index once its result is recorded.
// Callers hold e.mu.
func (e *Engine) lateLanded(taskID string) {
	if _, ok := e.late[taskID]; !ok {
		return
	}
	delete(e.late, taskID)
	delete(e.lateAdd, taskID)
	e.lateDone = append(e.lateDone, taskID)
}

// reopenedFor reports whether the task's ended job is held for a late
// result that may not be committed yet. Callers hold e.mu.
func (e *Engine) reopenedFor(taskID string) bool {
	jobID, _, _ := cutLast(taskID, '-')
	_, ok := e.reopened[jobID]
	return ok
}

// lateResult records the result of a task in the late index whose job has
// ended (admit checked the node and the state).
func (e *Engine) lateResult(sess *registry.Session, u *forlockv1.TaskUpdate, keysErr error) {
	taskID := u.GetTaskId()
	jobID, _, _ := cutLast(taskID, '-')
	e.mu.Lock()
	loaded := e.reopened[jobID]
	e.mu.Unlock()
	if loaded == nil {
		pb, err := e.store.Job(jobID)
		if err != nil {
			e.log.Warn("late result: loading its job failed; the agent will send it again", "task_id", taskID, "err", err)
			return
		}
		evs, err := e.store.JobEvents(jobID)
		if err != nil {
			e.log.Warn("late result: loading its job's events failed; the agent will send it again", "task_id", taskID, "err", err)
			return
		}
		loaded = newJob(pb)
		loaded.events, loaded.durable = evs, true
	}

	e.mu.Lock()
	defer e.mu.Unlock()
	if owner, ok := e.late[taskID]; !ok || owner != sess.NodeID {
		if !ok {
			e.ack(sess, taskID) // recorded meanwhile
		}
		return
	}
	// Two late results of one job share one reopened copy until it is
	// committed, so neither overwrites the other's task or event numbers.
	j := e.reopened[jobID]
	if j == nil {
		j = loaded
		e.reopened[jobID] = j
	}
	if t := j.tasks[taskID]; t != nil && t.GetNodeId() == sess.NodeID && lateFor(t, u.GetState()) {
		e.finish(j, t, u, "late result: ", keysErr)
	}
	e.lateLanded(taskID)
	e.ack(sess, taskID)
	e.afterCommit(func() {
		e.mu.Lock()
		defer e.mu.Unlock()
		if _, pending := e.dirty[jobID]; !pending {
			delete(e.reopened, jobID)
		}
	})
}
