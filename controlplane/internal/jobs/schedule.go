package jobs

import (
	"slices"
	"strings"

	"fmt"
	"github.com/forlock/fleet/controlplane/internal/registry"
	"time"

	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// schedule applies the job's rollout rules: it skips what can no longer run
// and dispatches what may start now. Callers hold e.mu.
func (e *Engine) schedule(j *job) {
	if !j.durable || j.pb.GetState() != forlockv1.JobState_JOB_STATE_RUNNING {
		return
	}
	r := j.pb.GetRollout()
	active, failures, canaryOpen, canaryFailed := 0, 0, false, false
	for _, t := range j.pb.GetTasks() {
		s := t.GetState()
		if s == forlockv1.TaskState_TASK_STATE_DISPATCHED || s == forlockv1.TaskState_TASK_STATE_RUNNING {
			active++
		}
		if failed(s) {
			failures++
		}
		if t.GetCanary() {
			canaryOpen = canaryOpen || !terminal(s)
			canaryFailed = canaryFailed || failed(s)
		}
	}

	stop := ""
	switch {
	case r.GetStopAfterFailures() > 0 && failures >= int(r.GetStopAfterFailures()):
		stop = fmt.Sprintf("not started: the job stopped after %d failed task(s)", failures)
	case canaryFailed:
		stop = "not started: a canary task failed"
	}
	now := time.Now()
	pastDeadline := now.After(j.pb.GetDeadline().AsTime())
	for _, t := range j.pb.GetTasks() {
		if t.GetState() != forlockv1.TaskState_TASK_STATE_QUEUED {
			continue
		}
		switch {
		case stop != "":
			e.setTask(j, t, forlockv1.TaskState_TASK_STATE_SKIPPED, stop)
			continue
		case pastDeadline:
			msg := "not started before the job deadline"
			if e.reg.Session(t.GetNodeId()) == nil {
				msg += " (node offline)"
			}
			e.setTask(j, t, forlockv1.TaskState_TASK_STATE_SKIPPED, msg)
			continue
		case canaryOpen && !t.GetCanary():
			continue // wait for the canaries
		case r.GetMaxParallel() > 0 && active >= int(r.GetMaxParallel()):
			continue // may still have to skip later tasks past their deadline
		}
		sess := e.reg.Session(t.GetNodeId())
		if sess == nil || !sess.Can(TasksCapability) {
			if r.GetOfflinePolicy() == forlockv1.OfflinePolicy_OFFLINE_POLICY_SKIP {
				reason := "node offline"
				if sess != nil {
					reason = "the node's agent does not run tasks (upgrade it)"
				}
				e.setTask(j, t, forlockv1.TaskState_TASK_STATE_SKIPPED, "not started: "+reason)
			}
			continue
		}
		m, err := e.assignment(j, t)
		if err != nil {
			e.setTask(j, t, forlockv1.TaskState_TASK_STATE_FAILED, "not started: "+err.Error())
			continue
		}
		if !sess.Send(m) {
			continue // the agent's queue is full: try again on the next pass
		}
		e.setTask(j, t, forlockv1.TaskState_TASK_STATE_DISPATCHED, "sent to the agent")
		active++
	}
}

// assignment builds the message that sends a task to its agent, with the
// data keys it needs made for this message only. Callers hold e.mu.
func (e *Engine) assignment(j *job, t *forlockv1.Task) (*forlockv1.ConnectResponse, error) {
	keys, err := e.taskKeys(j.pb.GetSpec())
	if err != nil {
		return nil, err
	}
	return &forlockv1.ConnectResponse{Msg: &forlockv1.ConnectResponse_TaskAssignment{TaskAssignment: &forlockv1.TaskAssignment{
		TaskId: t.GetId(), JobId: j.pb.GetId(), Spec: j.pb.GetSpec(), Keys: keys,
	}}}, nil
}

func sortTargets(ts []registry.Target) {
	slices.SortFunc(ts, func(a, b registry.Target) int { return strings.Compare(a.Name, b.Name) })
}
