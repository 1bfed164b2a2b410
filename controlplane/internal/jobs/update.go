package jobs

import (
	"context"
	"fmt"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/forlock/fleet/controlplane/internal/registry"
	"github.com/forlock/fleet/controlplane/internal/store"
	"github.com/forlock/fleet/internal/protocol"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// NodeConnected re-sends the node's dispatched and running tasks (the agent
// answers from its journal and never runs a task twice) and starts what was
// waiting for it.
func (e *Engine) NodeConnected(sess *registry.Session) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, j := range e.jobs {
		if !j.durable || !sess.Can(j.kind().Capability()) {
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
//
// An agent is not trusted to send only what it should. Everything an update
// can name is checked in memory first, under the lock, before any key is
// unwrapped or anything is read from bbolt: an update for another node's
// task is dropped; progress for a task that is not running in memory (its
// job has ended, or never was) is dropped; a terminal update for a task
// that is not in memory is acknowledged, so the agent forgets it, without
// loading its job. The one exception is a late result (see late.go).
func (e *Engine) TaskUpdate(sess *registry.Session, u *forlockv1.TaskUpdate) {
	if !e.admit(sess, u) {
		return
	}
	// Artifacts' data keys are checked outside the lock: with Vault
	// Transit that is a network call.
	var keysErr error
	if len(u.GetArtifacts()) > 0 && !drillOnly(u.GetArtifacts()) {
		keysErr = e.checkKeys(u.GetArtifacts())
	}
	if e.applyResult(sess, u, keysErr) {
		return
	}
	e.lateResult(sess, u, keysErr)
}

// admit handles what needs nothing but memory (progress, a task starting,
// duplicates, updates to drop) and reports whether u is a terminal result
// to record.
func (e *Engine) admit(sess *registry.Session, u *forlockv1.TaskUpdate) bool {
	state := u.GetState()
	result := terminal(state) && state != forlockv1.TaskState_TASK_STATE_SKIPPED
	e.mu.Lock()
	defer e.mu.Unlock()
	j, t := e.activeTask(u.GetTaskId())
	if j == nil {
		owner, late := e.late[u.GetTaskId()]
		switch {
		case late && owner == sess.NodeID && result:
			return true
		case late:
			e.dropped(sess, u, "another node's task")
		case terminal(state) && e.reopenedFor(u.GetTaskId()):
			e.ack(sess, u.GetTaskId()) // its late result may not be committed yet
		case terminal(state):
			// Nothing to record, nothing pending (a job leaves memory once
			// its end is committed): let the agent forget it now.
			e.ackNow(sess, u.GetTaskId())
		}
		return false
	}
	if t == nil || t.GetNodeId() != sess.NodeID {
		e.dropped(sess, u, "unknown task or another node's task")
		if terminal(state) && t == nil {
			e.ack(sess, u.GetTaskId())
		}
		return false
	}
	switch {
	case state == forlockv1.TaskState_TASK_STATE_RUNNING:
		switch t.GetState() {
		case forlockv1.TaskState_TASK_STATE_QUEUED, forlockv1.TaskState_TASK_STATE_DISPATCHED:
			e.setTask(j, t, state, "running")
		case forlockv1.TaskState_TASK_STATE_RUNNING:
			if p := u.GetProgress(); p != nil {
				e.progress(j, t, p)
			}
		}
		return false
	case result:
		if !terminal(t.GetState()) || lateFor(t, state) {
			return true
		}
		e.ack(sess, t.GetId()) // a duplicate
		return false
	}
	e.dropped(sess, u, "invalid state")
	return false
}

// applyResult records a terminal result for a task of an active job and
// reports whether the job was active.
func (e *Engine) applyResult(sess *registry.Session, u *forlockv1.TaskUpdate, keysErr error) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	j, t := e.activeTask(u.GetTaskId())
	if j == nil {
		return false // ended meanwhile: only a late result is still taken
	}
	if t == nil || t.GetNodeId() != sess.NodeID {
		return true
	}
	switch {
	case !terminal(t.GetState()):
		e.finish(j, t, u, "", keysErr)
		e.schedule(j)
	case lateFor(t, u.GetState()):
		// The control plane gave up on the task while the node was away,
		// but the agent did run it: its result is the truth.
		e.finish(j, t, u, "late result: ", keysErr)
	}
	e.lateLanded(t.GetId())
	e.ack(sess, t.GetId())
	return true
}

// activeTask finds a task of an active job by ID (the job ID, a dash and
// the index); t is nil when the job is active but has no such task.
// Callers hold e.mu.
func (e *Engine) activeTask(taskID string) (*job, *forlockv1.Task) {
	jobID, _, ok := cutLast(taskID, '-')
	if !ok {
		return nil, nil
	}
	j, ok := e.jobs[jobID]
	if !ok {
		return nil, nil
	}
	return j, j.tasks[taskID]
}

// dropped logs an update that was ignored, at most once a second: a
// hostile agent must not fill the log either. Callers hold e.mu.
func (e *Engine) dropped(sess *registry.Session, u *forlockv1.TaskUpdate, why string) {
	e.dropLog.Do(func() {
		e.log.Warn("task update ignored (further ones logged at most once a second)", "reason", why,
			"task_id", u.GetTaskId(), "node_id", sess.NodeID, "state", u.GetState().String())
	})
}

// finish records a task's terminal update; a backup's artifacts are
// cataloged in the same commit. Callers hold e.mu.
func (e *Engine) finish(j *job, t *forlockv1.Task, u *forlockv1.TaskUpdate, prefix string, keysErr error) {
	state, msg := u.GetState(), u.GetMessage()
	t.Details, t.Health = u.GetDetails(), u.GetHealth()
	if state == forlockv1.TaskState_TASK_STATE_SUCCEEDED {
		switch j.kind() {
		case protocol.KindBackup:
			if err := e.catalog(j, t, u.GetArtifacts(), keysErr); err != nil {
				state, msg = forlockv1.TaskState_TASK_STATE_FAILED, "backup not cataloged: "+err.Error()
			}
		case protocol.KindDeleteBackup:
			e.markDeleted(j.pb.GetSpec().GetDeleteBackup().GetArtifacts())
			for _, r := range j.pb.GetSpec().GetDeleteBackup().GetWal() {
				e.walTrims = append(e.walTrims, store.WalTrim{NodeID: t.GetNodeId(), Range: r})
			}
		case protocol.KindCertRotate:
			if c := u.GetCertificate(); c != nil {
				c = proto.CloneOf(c)
				c.RotatedAt = timestamppb.Now()
				t.Certificate = c
				e.pendingCerts = append(e.pendingCerts, store.NodeCertificate{NodeID: t.GetNodeId(), Cert: c})
			}
		}
	}
	if j.kind() == protocol.KindVerifyBackup && terminal(state) {
		e.recordDrill(j, u.GetArtifacts(), state)
	}
	if up := u.GetUpgrade(); up != nil && (j.kind() == protocol.KindUpgrade || j.kind() == protocol.KindRollback) {
		e.recordUpgrade(j, t, u, keysErr)
	}
	e.setTask(j, t, state, prefix+msg)
}

// lateFor reports a result for a task the control plane closed itself.
func lateFor(t *forlockv1.Task, state forlockv1.TaskState) bool {
	s := t.GetState()
	closed := s == forlockv1.TaskState_TASK_STATE_CANCELLED || s == forlockv1.TaskState_TASK_STATE_SKIPPED ||
		s == forlockv1.TaskState_TASK_STATE_UNKNOWN
	return closed && s != state
}

// ackNow acknowledges a terminal update that needs no commit.
func (e *Engine) ackNow(sess *registry.Session, taskID string) {
	sess.Send(&forlockv1.ConnectResponse{Msg: &forlockv1.ConnectResponse_TaskAck{TaskAck: &forlockv1.TaskAck{TaskId: taskID}}})
}

// ack acknowledges a terminal update once everything recorded so far is
// durable. Callers hold e.mu.
func (e *Engine) ack(sess *registry.Session, taskID string) {
	e.afterCommit(func() { e.ackNow(sess, taskID) })
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
	if err := e.store.CheckWritable(); err != nil {
		return nil, err
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
				e.expectLate(t)
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
