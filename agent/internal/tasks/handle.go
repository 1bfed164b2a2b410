package tasks

import (
	"context"
	"errors"
	"fmt"

	"github.com/forlock/fleet/agent/internal/journal"
	"github.com/forlock/fleet/internal/protocol"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// Handle acts on one task message of the control stream and reports
// whether m was one. It never waits for a task; it writes the journal.
func (r *Runner) Handle(m *forlockv1.ConnectResponse) bool {
	r.handleMu.Lock()
	defer r.handleMu.Unlock()
	switch msg := m.GetMsg().(type) {
	case *forlockv1.ConnectResponse_TaskAssignment:
		r.assign(msg.TaskAssignment)
	case *forlockv1.ConnectResponse_TaskCancel:
		r.cancel(msg.TaskCancel)
	case *forlockv1.ConnectResponse_TaskAck:
		r.ack(msg.TaskAck.GetTaskId())
	default:
		return false
	}
	return true
}

// known reports a task the runner has seen: its running state if it runs
// in this process, else its journal entry. It returns false for a new task
// ID, and true (having logged) when the journal cannot be read: a task is
// never run when its record cannot be checked.
func (r *Runner) known(id string) (*task, *journal.Entry, bool) {
	r.mu.Lock()
	t := r.running[id]
	r.mu.Unlock()
	if t != nil {
		return t, nil, true
	}
	e, err := r.cfg.Journal.Get(id)
	switch {
	case err == nil:
		return nil, &e, true
	case errors.Is(err, journal.ErrNotFound):
		return nil, nil, false
	}
	r.log.Error("cannot read the task journal; the task is not run", "task_id", id, "error", err)
	return nil, nil, true
}

func (r *Runner) assign(a *forlockv1.TaskAssignment) {
	id, jobID, kind := a.GetTaskId(), a.GetJobId(), protocol.KindOf(a.GetSpec())
	if id == "" {
		r.log.Warn("ignoring a task assignment without a task ID", "job_id", jobID)
		return
	}
	if t, e, ok := r.known(id); ok {
		switch {
		case t != nil:
			r.send(t.runningUpdate())
		case e != nil:
			r.log.Info("task assigned again; reporting its recorded state, not running it",
				"task_id", id, "job_id", e.JobID, "kind", e.Kind, "state", string(e.State))
			r.send(entryUpdate(*e))
		}
		return
	}

	r.mu.Lock()
	closed := r.closed
	r.mu.Unlock()
	if closed {
		// Not journaled: the control plane assigns it again after the
		// agent is back.
		r.log.Info("agent shutting down; not starting the task", "task_id", id, "job_id", jobID, "kind", kind)
		return
	}
	e, err := r.cfg.Journal.Begin(id, jobID, kind)
	if err != nil {
		r.log.Error("cannot journal the task; it is not run", "task_id", id, "job_id", jobID, "error", err)
		return
	}
	h := r.cfg.Handlers[kind]
	if h == nil {
		name := kind
		if name == "" {
			name = "(unknown to this agent's API)"
		}
		r.finishNow(e, journal.Failed, fmt.Sprintf("this agent does not support job kind %s (agent version %s)", name, r.cfg.AgentVersion))
		return
	}

	ctx, cancel := context.WithCancelCause(context.Background())
	t := newTask(e, cancel)
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		cancel(nil)
		r.finishNow(e, journal.Interrupted, ShutdownMessage)
		return
	}
	r.running[id] = t
	r.wg.Add(1)
	r.mu.Unlock()

	r.started.Add(1)
	r.log.Info("task started", t.attrs()...)
	r.send(t.runningUpdate())
	go r.run(ctx, t, h, assignmentOf(a))
}

// finishNow ends a begun task that never ran.
func (r *Runner) finishNow(e journal.Entry, state journal.State, msg string) {
	e, err := r.cfg.Journal.Finish(e.TaskID, state, msg, journal.Outcome{})
	if err != nil {
		r.log.Error("cannot journal the end of a task", "task_id", e.TaskID, "error", err)
		return
	}
	r.log.Warn("task not run", "task_id", e.TaskID, "job_id", e.JobID, "kind", e.Kind,
		"state", string(e.State), "message", e.Message)
	r.send(entryUpdate(e))
}

func (r *Runner) cancel(c *forlockv1.TaskCancel) {
	id := c.GetTaskId()
	if id == "" {
		return
	}
	t, e, ok := r.known(id)
	switch {
	case t != nil:
		r.log.Info("cancelling task", t.attrs("reason", c.GetReason())...)
		t.cancel(&cancelError{reason: c.GetReason()})
	case e != nil:
		if e.State.Terminal() {
			r.send(entryUpdate(*e))
		}
	case !ok:
		msg := cancelUnknownIntro
		if c.GetReason() != "" {
			msg += ": " + c.GetReason()
		}
		e, err := r.cfg.Journal.CancelUnknown(id, msg)
		if err != nil {
			r.log.Error("cannot journal the cancel of an unseen task", "task_id", id, "error", err)
			return
		}
		r.log.Info("recorded an unseen task as cancelled; it will never run", "task_id", id, "reason", c.GetReason())
		r.send(entryUpdate(e))
	}
}

func (r *Runner) ack(id string) {
	err := r.cfg.Journal.Ack(id)
	switch {
	case err == nil:
	case errors.Is(err, journal.ErrNotFound), errors.Is(err, journal.ErrNotTerminal):
		r.log.Debug("ignoring an ack", "task_id", id, "error", err)
	default:
		r.log.Error("cannot journal a task ack", "task_id", id, "error", err)
	}
}
