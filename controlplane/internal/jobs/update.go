package jobs

import (
	"context"
	"fmt"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/forlock/fleet/controlplane/internal/registry"
	"github.com/forlock/fleet/controlplane/internal/store"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// NodeConnected re-sends the node's dispatched and running tasks (the agent
// answers from its journal and never runs a task twice) and starts what was
// waiting for it.
func (e *Engine) NodeConnected(sess *registry.Session) {
	if !sess.Can(TasksCapability) {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, j := range e.jobs {
		if !j.durable {
			continue
		}
		for _, t := range j.pb.GetTasks() {
			if t.GetNodeId() != sess.NodeID {
				continue
			}
			switch t.GetState() {
			case forlockv1.TaskState_TASK_STATE_DISPATCHED, forlockv1.TaskState_TASK_STATE_RUNNING:
				e.resend(j, t, sess)
			}
		}
		e.schedule(j)
	}
}

// TaskUpdate applies an update from the agent of sess. Terminal updates are
// acknowledged to the agent once they are durable, including duplicates.
func (e *Engine) TaskUpdate(sess *registry.Session, u *forlockv1.TaskUpdate) {
	// Artifacts' data keys are checked before the lock: with Vault Transit
	// that is a network call.
	var keysErr error
	if terminal(u.GetState()) && len(u.GetArtifacts()) > 0 {
		keysErr = e.checkKeys(u.GetArtifacts())
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	j, t := e.findTask(u.GetTaskId())
	if t == nil || t.GetNodeId() != sess.NodeID {
		e.log.Warn("task update for an unknown task or another node's task ignored", "task_id", u.GetTaskId(), "node_id", sess.NodeID)
		if terminal(u.GetState()) && t == nil {
			e.ack(sess, u.GetTaskId()) // nothing to record: let the agent forget it
		}
		return
	}
	state := u.GetState()
	switch {
	case state == forlockv1.TaskState_TASK_STATE_RUNNING:
		switch t.GetState() {
		case forlockv1.TaskState_TASK_STATE_QUEUED, forlockv1.TaskState_TASK_STATE_DISPATCHED:
			e.setTask(j, t, state, "running")
		case forlockv1.TaskState_TASK_STATE_RUNNING:
			if p := u.GetProgress(); p != nil {
				t.Progress = proto.CloneOf(p)
				e.record(j, t, p.GetMessage(), p)
			}
		}
	case terminal(state) && state != forlockv1.TaskState_TASK_STATE_SKIPPED:
		switch {
		case !terminal(t.GetState()):
			e.finish(j, t, u, "", keysErr)
			e.schedule(j)
		case t.GetState() != state && closedByControlPlane(t.GetState()):
			// The control plane gave up on the task while the node was away,
			// but the agent did run it: its result is the truth.
			e.finish(j, t, u, "late result: ", keysErr)
		}
		e.ack(sess, t.GetId())
	default:
		e.log.Warn("task update with an invalid state ignored", "task_id", t.GetId(), "state", state)
	}
}

// finish records a task's terminal update; a backup's artifacts are
// cataloged in the same commit. Callers hold e.mu.
func (e *Engine) finish(j *job, t *forlockv1.Task, u *forlockv1.TaskUpdate, prefix string, keysErr error) {
	state, msg := u.GetState(), u.GetMessage()
	t.Details, t.Health = u.GetDetails(), u.GetHealth()
	if state == forlockv1.TaskState_TASK_STATE_SUCCEEDED {
		switch j.pb.GetKind() {
		case "backup":
			if err := e.catalog(j, t, u.GetArtifacts(), keysErr); err != nil {
				state, msg = forlockv1.TaskState_TASK_STATE_FAILED, "backup not cataloged: "+err.Error()
			}
		case "delete_backup":
			e.markDeleted(j.pb.GetSpec().GetDeleteBackup().GetArtifacts())
		case "cert_rotate":
			if c := u.GetCertificate(); c != nil {
				c = proto.CloneOf(c)
				c.RotatedAt = timestamppb.Now()
				t.Certificate = c
				e.pendingCerts = append(e.pendingCerts, store.NodeCertificate{NodeID: t.GetNodeId(), Cert: c})
			}
		}
	}
	if up := u.GetUpgrade(); up != nil && (j.pb.GetKind() == "upgrade" || j.pb.GetKind() == "rollback") {
		e.recordUpgrade(j, t, u, keysErr)
	}
	e.setTask(j, t, state, prefix+msg)
}

func closedByControlPlane(s forlockv1.TaskState) bool {
	return s == forlockv1.TaskState_TASK_STATE_CANCELLED || s == forlockv1.TaskState_TASK_STATE_SKIPPED
}

// ack acknowledges a terminal update once everything recorded so far is
// durable. Callers hold e.mu.
func (e *Engine) ack(sess *registry.Session, taskID string) {
	e.afterCommit(func() {
		sess.Send(&forlockv1.ConnectResponse{Msg: &forlockv1.ConnectResponse_TaskAck{TaskAck: &forlockv1.TaskAck{TaskId: taskID}}})
	})
}

// findTask finds a task of an active job, or loads the ended job it belongs
// to (its ID is the job ID, a dash and the index). Callers hold e.mu.
func (e *Engine) findTask(taskID string) (*job, *forlockv1.Task) {
	jobID, _, ok := cutLast(taskID, '-')
	if !ok {
		return nil, nil
	}
	j, active := e.jobs[jobID]
	if !active {
		pb, err := e.store.Job(jobID)
		if err != nil {
			return nil, nil
		}
		evs, err := e.store.JobEvents(jobID)
		if err != nil {
			return nil, nil
		}
		j = newJob(pb)
		j.events, j.durable = evs, true
	}
	return j, j.tasks[taskID]
}

func cutLast(s string, sep byte) (string, string, bool) {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == sep {
			return s[:i], s[i+1:], true
		}
	}
	return "", "", false
}

// Cancel cancels a job and returns it once the cancel is durable.
func (e *Engine) Cancel(ctx context.Context, id, reason string) (*forlockv1.Job, error) {
	if reason == "" {
		reason = "cancelled by an operator"
	}
	if len(reason) > 256 {
		return nil, invalid("reason longer than 256 bytes")
	}
	e.mu.Lock()
	j, ok := e.jobs[id]
	if !ok || j.pb.GetState() != forlockv1.JobState_JOB_STATE_RUNNING {
		e.mu.Unlock()
		if _, err := e.store.Job(id); !ok && err != nil {
			return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
		}
		return nil, fmt.Errorf("%w: %s", ErrEnded, id)
	}
	j.pb.CancelReason = reason
	e.record(j, nil, "cancel requested: "+reason, nil)
	for _, t := range j.pb.GetTasks() {
		switch t.GetState() {
		case forlockv1.TaskState_TASK_STATE_QUEUED:
			e.setTask(j, t, forlockv1.TaskState_TASK_STATE_CANCELLED, "job cancelled before the task started")
		case forlockv1.TaskState_TASK_STATE_DISPATCHED, forlockv1.TaskState_TASK_STATE_RUNNING:
			sess := e.reg.Session(t.GetNodeId())
			if sess == nil || !sess.Send(&forlockv1.ConnectResponse{Msg: &forlockv1.ConnectResponse_TaskCancel{TaskCancel: &forlockv1.TaskCancel{TaskId: t.GetId(), Reason: reason}}}) {
				e.setTask(j, t, forlockv1.TaskState_TASK_STATE_CANCELLED, "cancelled while the node was unreachable; if its agent ran the task, the result will be recorded when it returns")
			}
		}
	}
	durable := make(chan struct{})
	e.afterCommit(func() { close(durable) })
	snap := proto.CloneOf(j.pb)
	e.mu.Unlock()
	select {
	case <-durable:
		return snap, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
