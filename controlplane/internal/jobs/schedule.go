package jobs

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/forlock/fleet/controlplane/internal/registry"
	"github.com/forlock/fleet/internal/labels"
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
		if _, ok := e.preparing[t.GetId()]; ok || s == forlockv1.TaskState_TASK_STATE_DISPATCHED || s == forlockv1.TaskState_TASK_STATE_RUNNING {
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
		if _, ok := e.preparing[t.GetId()]; ok {
			continue // its material is being made
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
		if !e.inScope(j, t) {
			e.setTask(j, t, forlockv1.TaskState_TASK_STATE_SKIPPED, "not started: the node has left the submitter's scope "+strconv.Quote(j.pb.GetScope())+" (its labels changed)")
			continue
		}
		sess := e.reg.Session(t.GetNodeId())
		if sess == nil || !sess.Can(j.kind().Capability()) {
			if r.GetOfflinePolicy() == forlockv1.OfflinePolicy_OFFLINE_POLICY_SKIP {
				reason := "node offline"
				if sess != nil {
					reason = "the node's agent does not run tasks (upgrade it)"
				}
				e.setTask(j, t, forlockv1.TaskState_TASK_STATE_SKIPPED, "not started: "+reason)
			}
			continue
		}
		if needsMaterial(j.pb.GetSpec()) {
			e.prepareAndSend(j, t)
			active++
			continue
		}
		if !sess.Send(e.assignment(j, t, material{})) {
			continue // the agent's queue is full: try again on the next pass
		}
		e.setTask(j, t, forlockv1.TaskState_TASK_STATE_DISPATCHED, "sent to the agent")
		active++
	}
}

// inScope checks a task's node against its job's scope again at dispatch:
// labels may have changed since the submit.
func (e *Engine) inScope(j *job, t *forlockv1.Task) bool {
	if j.pb.GetScope() == "" {
		return true
	}
	sel, err := labels.ParseSelector(j.pb.GetScope())
	return err == nil && e.reg.Matches(t.GetNodeId(), sel)
}

func sortTargets(ts []registry.Target) {
	slices.SortFunc(ts, func(a, b registry.Target) int { return strings.Compare(a.Name, b.Name) })
}
