package jobs

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/forlock/fleet/controlplane/internal/registry"
	"github.com/forlock/fleet/internal/pki"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// The rollout rules of schedule.go, as a table. The engine runs on a real
// store and registry (newFleet); the agents are the test, which sees what
// was dispatched as task states and answers through TaskUpdate. Submit
// returns after the first scheduling pass, and a result is scheduled on
// synchronously, so every state below is exact, not sampled; only the
// deadline waits for the engine's tick.

// Task states, short for the table (own names: other test files declare
// some of the same).
const (
	sQueued     = forlockv1.TaskState_TASK_STATE_QUEUED
	sDispatched = forlockv1.TaskState_TASK_STATE_DISPATCHED
	sRunning    = forlockv1.TaskState_TASK_STATE_RUNNING
	sSucceeded  = forlockv1.TaskState_TASK_STATE_SUCCEEDED
	sFailed     = forlockv1.TaskState_TASK_STATE_FAILED
	sSkipped    = forlockv1.TaskState_TASK_STATE_SKIPPED
)

// rolloutRun is one job across the fleet's nodes.
type rolloutRun struct {
	f     *fleet
	sess  map[string]*registry.Session
	jobID string
}

// tasks returns each node's task by node name.
func (r *rolloutRun) tasks() map[string]*forlockv1.Task {
	r.f.t.Helper()
	j, err := r.f.e.Get(r.jobID)
	require.NoError(r.f.t, err)
	out := map[string]*forlockv1.Task{}
	for _, t := range j.GetTasks() {
		out[t.GetNodeName()] = t
	}
	return out
}

// states is a compact view for comparisons: node -> state.
func (r *rolloutRun) states() map[string]forlockv1.TaskState {
	out := map[string]forlockv1.TaskState{}
	for n, t := range r.tasks() {
		out[n] = t.GetState()
	}
	return out
}

// finish has node's agent run its task to state.
func (r *rolloutRun) finish(node string, state forlockv1.TaskState) {
	r.f.t.Helper()
	id := r.tasks()[node].GetId()
	r.f.e.TaskUpdate(r.sess[node], update(id, forlockv1.TaskState_TASK_STATE_RUNNING, "working"))
	r.f.e.TaskUpdate(r.sess[node], update(id, state, "done"))
}

// connect opens node's session now, able to run tasks.
func (r *rolloutRun) connect(node string) { r.sess[node] = r.f.connect(node) }

type scheduleStep struct {
	do   func(r *rolloutRun) // nil: only check the state after submit
	want map[string]forlockv1.TaskState
	// why holds a part of the message of tasks that must have one.
	why map[string]string
}

func TestRolloutSchedule(t *testing.T) {
	nodes := []string{"n1", "n2", "n3", "n4"}
	all := func(s forlockv1.TaskState) map[string]forlockv1.TaskState {
		return map[string]forlockv1.TaskState{"n1": s, "n2": s, "n3": s, "n4": s}
	}
	st := func(kv ...any) map[string]forlockv1.TaskState {
		out := map[string]forlockv1.TaskState{}
		for i := 0; i < len(kv); i += 2 {
			out[kv[i].(string)] = kv[i+1].(forlockv1.TaskState)
		}
		return out
	}
	for name, tc := range map[string]struct {
		rollout *forlockv1.Rollout
		offline []string // nodes not connected at submit
		noTasks []string // nodes connected with an agent that runs no tasks
		steps   []scheduleStep
	}{
		"no limits: every online node at once": {
			rollout: &forlockv1.Rollout{},
			steps:   []scheduleStep{{want: all(sDispatched)}},
		},
		"max_parallel bounds the tasks in flight": {
			rollout: &forlockv1.Rollout{MaxParallel: 2},
			steps: []scheduleStep{
				{want: st("n1", sDispatched, "n2", sDispatched, "n3", sQueued, "n4", sQueued)},
				{do: func(r *rolloutRun) { r.finish("n1", sSucceeded) }, want: st("n1", sSucceeded, "n2", sDispatched, "n3", sDispatched, "n4", sQueued)},
				// A failure frees its slot too, and without
				// stop_after_failures stops nothing.
				{do: func(r *rolloutRun) { r.finish("n2", sFailed) }, want: st("n1", sSucceeded, "n2", sFailed, "n3", sDispatched, "n4", sDispatched)},
			},
		},
		"a running task holds its slot": {
			rollout: &forlockv1.Rollout{MaxParallel: 1},
			steps: []scheduleStep{
				{do: func(r *rolloutRun) {
					r.f.e.TaskUpdate(r.sess["n1"], update(r.tasks()["n1"].GetId(), forlockv1.TaskState_TASK_STATE_RUNNING, "working"))
				}, want: st("n1", sRunning, "n2", sQueued, "n3", sQueued, "n4", sQueued)},
			},
		},
		"canaries first, then the rest": {
			rollout: &forlockv1.Rollout{Canary: 1},
			steps: []scheduleStep{
				{want: st("n1", sDispatched, "n2", sQueued, "n3", sQueued, "n4", sQueued)},
				{do: func(r *rolloutRun) { r.finish("n1", sSucceeded) }, want: st("n1", sSucceeded, "n2", sDispatched, "n3", sDispatched, "n4", sDispatched)},
			},
		},
		"canaries wait for each other, then max_parallel applies": {
			rollout: &forlockv1.Rollout{Canary: 2, MaxParallel: 1},
			steps: []scheduleStep{
				{want: st("n1", sDispatched, "n2", sQueued, "n3", sQueued, "n4", sQueued)},
				{do: func(r *rolloutRun) { r.finish("n1", sSucceeded) }, want: st("n1", sSucceeded, "n2", sDispatched, "n3", sQueued, "n4", sQueued)},
				{do: func(r *rolloutRun) { r.finish("n2", sSucceeded) }, want: st("n1", sSucceeded, "n2", sSucceeded, "n3", sDispatched, "n4", sQueued)},
			},
		},
		"a failed canary skips the rest": {
			rollout: &forlockv1.Rollout{Canary: 2},
			steps: []scheduleStep{
				{want: st("n1", sDispatched, "n2", sDispatched, "n3", sQueued, "n4", sQueued)},
				{
					do:   func(r *rolloutRun) { r.finish("n1", sFailed) },
					want: st("n1", sFailed, "n2", sDispatched, "n3", sSkipped, "n4", sSkipped),
					why:  map[string]string{"n3": "not started: a canary task failed", "n4": "a canary task failed"},
				},
			},
		},
		"stop_after_failures skips what has not started": {
			rollout: &forlockv1.Rollout{MaxParallel: 2, StopAfterFailures: 1},
			steps: []scheduleStep{
				{
					do:   func(r *rolloutRun) { r.finish("n2", sFailed) },
					want: st("n1", sDispatched, "n2", sFailed, "n3", sSkipped, "n4", sSkipped),
					why:  map[string]string{"n3": "not started: the job stopped after 1 failed task(s)"},
				},
			},
		},
		"stop_after_failures counts to its number": {
			rollout: &forlockv1.Rollout{MaxParallel: 1, StopAfterFailures: 2},
			steps: []scheduleStep{
				{do: func(r *rolloutRun) { r.finish("n1", sFailed) }, want: st("n1", sFailed, "n2", sDispatched, "n3", sQueued, "n4", sQueued)},
				{
					do:   func(r *rolloutRun) { r.finish("n2", sFailed) },
					want: st("n1", sFailed, "n2", sFailed, "n3", sSkipped, "n4", sSkipped),
					why:  map[string]string{"n4": "stopped after 2 failed task(s)"},
				},
			},
		},
		"offline, wait: queued until the node connects": {
			rollout: &forlockv1.Rollout{},
			offline: []string{"n2", "n4"},
			steps: []scheduleStep{
				{want: st("n1", sDispatched, "n2", sQueued, "n3", sDispatched, "n4", sQueued)},
				{do: func(r *rolloutRun) { r.connect("n4") }, want: st("n1", sDispatched, "n2", sQueued, "n3", sDispatched, "n4", sDispatched)},
			},
		},
		"offline, wait: an offline node does not take a max_parallel slot": {
			rollout: &forlockv1.Rollout{MaxParallel: 1},
			offline: []string{"n1"},
			steps: []scheduleStep{
				{want: st("n1", sQueued, "n2", sDispatched, "n3", sQueued, "n4", sQueued)},
			},
		},
		"offline, skip": {
			rollout: &forlockv1.Rollout{OfflinePolicy: forlockv1.OfflinePolicy_OFFLINE_POLICY_SKIP},
			offline: []string{"n2"},
			noTasks: []string{"n3"},
			steps: []scheduleStep{{
				want: st("n1", sDispatched, "n2", sSkipped, "n3", sSkipped, "n4", sDispatched),
				why:  map[string]string{"n2": "not started: node offline", "n3": "not started: the node's agent does not run tasks (upgrade it)"},
			}},
		},
		"an agent that runs no tasks waits like an offline node": {
			rollout: &forlockv1.Rollout{},
			noTasks: []string{"n1"},
			steps:   []scheduleStep{{want: st("n1", sQueued, "n2", sDispatched, "n3", sDispatched, "n4", sDispatched)}},
		},
		"deadline: what has not started by then is skipped": {
			rollout: &forlockv1.Rollout{MaxParallel: 1, Deadline: durationpb.New(time.Second)},
			offline: []string{"n4"},
			steps: []scheduleStep{
				{want: st("n1", sDispatched, "n2", sQueued, "n3", sQueued, "n4", sQueued)},
				{
					do: func(r *rolloutRun) {
						require.Eventually(r.f.t, func() bool { return r.states()["n2"] == sSkipped }, 5*time.Second, 10*time.Millisecond)
					},
					// The dispatched task is the agent's to finish; only
					// queued ones are skipped.
					want: st("n1", sDispatched, "n2", sSkipped, "n3", sSkipped, "n4", sSkipped),
					why:  map[string]string{"n2": "not started before the job deadline", "n4": "not started before the job deadline (node offline)"},
				},
				// A node connecting after the deadline gets nothing.
				{do: func(r *rolloutRun) { r.connect("n4") }, want: st("n1", sDispatched, "n2", sSkipped, "n3", sSkipped, "n4", sSkipped)},
			},
		},
	} {
		t.Run(name, func(t *testing.T) {
			f := newFleet(t, Limits{}, nodes...)
			r := &rolloutRun{f: f, sess: map[string]*registry.Session{}}
			for _, n := range nodes {
				switch {
				case contains(tc.offline, n):
				case contains(tc.noTasks, n):
					node := f.nodes[n]
					s, err := f.reg.Attach(pki.NodeID{ID: node.ID, Epoch: node.Epoch}, node.CertSerial, &forlockv1.AgentHello{})
					require.NoError(t, err)
					f.e.NodeConnected(s)
					r.sess[n] = s
				default:
					r.connect(n)
				}
			}
			j, _, err := f.e.Submit(context.Background(), &forlockv1.SubmitJobRequest{
				Spec:    &forlockv1.JobSpec{Kind: &forlockv1.JobSpec_HealthCheck{HealthCheck: &forlockv1.HealthCheckSpec{}}},
				Target:  &forlockv1.Target{Nodes: nodes},
				Rollout: tc.rollout,
			})
			require.NoError(t, err)
			r.jobID = j.GetId()
			for i, step := range tc.steps {
				if step.do != nil {
					step.do(r)
				}
				require.Equal(t, step.want, r.states(), "step %d", i)
				tasks := r.tasks()
				for n, why := range step.why {
					require.Contains(t, tasks[n].GetMessage(), why, "step %d, node %s", i, n)
				}
			}
			// What was dispatched is exactly what reached the agents.
			sent := map[string]bool{}
			for n, s := range r.sess {
				for {
					select {
					case m := <-s.Outbox():
						if m.GetTaskAssignment() != nil {
							sent[n] = true
						}
						continue
					default:
					}
					break
				}
			}
			for n, task := range r.tasks() {
				started := task.GetState() != sQueued && task.GetState() != sSkipped
				require.Equal(t, started, sent[n], "node %s: state %s", n, task.GetState())
			}
		})
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
