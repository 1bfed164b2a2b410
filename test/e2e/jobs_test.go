package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/forlock/fleet/agent"
	"github.com/forlock/fleet/internal/protocol"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// sleeper is a task that takes d (or until cancelled) and counts its runs.
type sleeper struct {
	d         time.Duration
	fail      bool
	runs      atomic.Int32
	cancelled atomic.Bool
}

func (s *sleeper) handler() agent.TaskHandler {
	return agent.TaskHandlerFunc(func(ctx context.Context, _ agent.TaskAssignment, report func(*forlockv1.Progress)) (agent.TaskResult, error) {
		s.runs.Add(1)
		report(&forlockv1.Progress{Phase: "sleeping", Percent: 50})
		select {
		case <-time.After(s.d):
		case <-ctx.Done():
			s.cancelled.Store(true)
			return agent.TaskResult{}, ctx.Err()
		}
		if s.fail {
			return agent.TaskResult{}, errors.New("planned failure")
		}
		return agent.TaskResult{Message: "slept", Details: []string{"slept " + s.d.String()}}, nil
	})
}

// startFleetOf starts n agents named fleet-00.. with a handler each, and
// waits until all are online.
func (f *fleet) startFleetOf(n int, mk func(i int) *sleeper) ([]*runningAgent, []*sleeper) {
	f.t.Helper()
	token := f.joinToken(uint32(n))
	agents := make([]*runningAgent, n)
	tasks := make([]*sleeper, n)
	for i := range agents {
		tasks[i] = mk(i)
		agents[i] = f.runAgent(agentOpts{name: fmt.Sprintf("fleet-%02d", i), token: token,
			handlers: map[protocol.Kind]agent.TaskHandler{"health_check": tasks[i].handler()}})
	}
	f.waitOnline(n)
	return agents, tasks
}

func (f *fleet) waitOnline(n int) {
	f.t.Helper()
	require.Eventually(f.t, func() bool {
		resp, err := f.nodes.ListNodes(f.admin(), &forlockv1.ListNodesRequest{States: []forlockv1.NodeState{forlockv1.NodeState_NODE_STATE_ONLINE}})
		return err == nil && len(resp.GetNodes()) == n
	}, 60*time.Second, 20*time.Millisecond, "fleet never fully online")
}

func (f *fleet) jobs() forlockv1.JobServiceClient {
	return forlockv1.NewJobServiceClient(f.conn)
}

func (f *fleet) submit(target *forlockv1.Target, rollout *forlockv1.Rollout) *forlockv1.Job {
	f.t.Helper()
	resp, err := f.jobs().SubmitJob(f.admin(), &forlockv1.SubmitJobRequest{
		Spec:   &forlockv1.JobSpec{Kind: &forlockv1.JobSpec_HealthCheck{HealthCheck: &forlockv1.HealthCheckSpec{}}},
		Target: target, Rollout: rollout,
	})
	require.NoError(f.t, err)
	require.True(f.t, resp.GetCreated())
	return resp.GetJob()
}

var all = &forlockv1.Target{All: true}

// watch follows a job from the start until it ends and returns its events.
func (f *fleet) watch(id string) []*forlockv1.JobEvent {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(f.admin(), 60*time.Second)
	defer cancel()
	stream, err := f.jobs().WatchJob(ctx, &forlockv1.WatchJobRequest{Id: id, FromStart: true})
	require.NoError(f.t, err)
	first, err := stream.Recv()
	require.NoError(f.t, err)
	require.NotNil(f.t, first.GetSnapshot())
	var evs []*forlockv1.JobEvent
	for {
		m, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return evs
		}
		require.NoError(f.t, err)
		evs = append(evs, m.GetEvent())
	}
}

func (f *fleet) job(id string) (*forlockv1.Job, []*forlockv1.JobEvent) {
	f.t.Helper()
	resp, err := f.jobs().GetJob(f.admin(), &forlockv1.GetJobRequest{Id: id, IncludeHistory: true})
	require.NoError(f.t, err)
	return resp.GetJob(), resp.GetHistory()
}

// replay walks a job's history and calls fn after each task transition with
// the current state of every task.
func replay(evs []*forlockv1.JobEvent, fn func(ev *forlockv1.JobEvent, states map[string]forlockv1.TaskState)) {
	states := map[string]forlockv1.TaskState{}
	for _, ev := range evs {
		if ev.GetTaskId() == "" {
			continue
		}
		states[ev.GetTaskId()] = ev.GetTaskState()
		fn(ev, states)
	}
}

func count(states map[string]forlockv1.TaskState, want ...forlockv1.TaskState) int {
	n := 0
	for _, s := range states {
		for _, w := range want {
			if s == w {
				n++
			}
		}
	}
	return n
}

func taskStates(j *forlockv1.Job) map[forlockv1.TaskState]int {
	out := map[forlockv1.TaskState]int{}
	for _, t := range j.GetTasks() {
		out[t.GetState()]++
	}
	return out
}

func TestJobMaxParallelOnFiftyAgents(t *testing.T) {
	f := newFleet(t, nil)
	_, tasks := f.startFleetOf(50, func(int) *sleeper { return &sleeper{d: 50 * time.Millisecond} })
	j := f.submit(all, &forlockv1.Rollout{MaxParallel: 5})
	require.Len(t, j.GetTasks(), 50)
	f.watch(j.GetId())
	final, history := f.job(j.GetId())
	require.Equal(t, forlockv1.JobState_JOB_STATE_SUCCEEDED, final.GetState())

	peak := 0
	replay(history, func(_ *forlockv1.JobEvent, s map[string]forlockv1.TaskState) {
		peak = max(peak, count(s, forlockv1.TaskState_TASK_STATE_DISPATCHED, forlockv1.TaskState_TASK_STATE_RUNNING))
	})
	require.LessOrEqual(t, peak, 5, "max_parallel 5 exceeded")
	require.Greater(t, peak, 1, "tasks never ran in parallel")
	for i, s := range tasks {
		require.EqualValues(t, 1, s.runs.Load(), "agent %d ran its task %d times", i, s.runs.Load())
	}
}

func TestJobStopAfterFailure(t *testing.T) {
	f := newFleet(t, nil)
	_, tasks := f.startFleetOf(8, func(i int) *sleeper { return &sleeper{d: 10 * time.Millisecond, fail: i == 2} })
	j := f.submit(all, &forlockv1.Rollout{MaxParallel: 1, StopAfterFailures: 1})
	f.watch(j.GetId())
	final, _ := f.job(j.GetId())
	require.Equal(t, forlockv1.JobState_JOB_STATE_PARTIALLY_FAILED, final.GetState())
	for i, task := range final.GetTasks() {
		switch {
		case i < 2:
			require.Equal(t, forlockv1.TaskState_TASK_STATE_SUCCEEDED, task.GetState(), task.GetNodeName())
		case i == 2:
			require.Equal(t, forlockv1.TaskState_TASK_STATE_FAILED, task.GetState())
			require.Contains(t, task.GetMessage(), "planned failure")
		default:
			require.Equal(t, forlockv1.TaskState_TASK_STATE_SKIPPED, task.GetState(), task.GetNodeName())
			require.Contains(t, task.GetMessage(), "stopped after 1 failed")
			require.Zero(t, tasks[i].runs.Load(), "a skipped task must not run")
		}
	}
}

func TestJobCanariesFinishFirst(t *testing.T) {
	f := newFleet(t, nil)
	f.startFleetOf(12, func(int) *sleeper { return &sleeper{d: 30 * time.Millisecond} })
	j := f.submit(all, &forlockv1.Rollout{Canary: 2, MaxParallel: 10})
	f.watch(j.GetId())
	final, history := f.job(j.GetId())
	require.Equal(t, forlockv1.JobState_JOB_STATE_SUCCEEDED, final.GetState())
	canary := map[string]bool{}
	for _, task := range final.GetTasks() {
		if task.GetCanary() {
			canary[task.GetId()] = true
		}
	}
	require.Len(t, canary, 2)
	canariesDone := 0
	replay(history, func(ev *forlockv1.JobEvent, _ map[string]forlockv1.TaskState) {
		if canary[ev.GetTaskId()] && ev.GetTaskState() == forlockv1.TaskState_TASK_STATE_SUCCEEDED {
			canariesDone++
		}
		if !canary[ev.GetTaskId()] && ev.GetTaskState() == forlockv1.TaskState_TASK_STATE_DISPATCHED {
			require.Equal(t, 2, canariesDone, "task %s started before the canaries finished", ev.GetTaskId())
		}
	})
}

func TestJobOfflineNodeWaitsUntilDeadline(t *testing.T) {
	f := newFleet(t, nil)
	token := f.joinToken(2)
	late := &sleeper{d: 10 * time.Millisecond}
	never := &sleeper{d: 10 * time.Millisecond}
	lateDir, neverDir := t.TempDir(), t.TempDir()
	a := f.runAgent(agentOpts{name: "late", token: token, stateDir: lateDir})
	b := f.runAgent(agentOpts{name: "never", token: token, stateDir: neverDir})
	f.waitOnline(2)
	a.stop()
	b.stop()
	f.waitState("late", forlockv1.NodeState_NODE_STATE_OFFLINE, 5*time.Second)
	f.waitState("never", forlockv1.NodeState_NODE_STATE_OFFLINE, 5*time.Second)

	j := f.submit(all, &forlockv1.Rollout{Deadline: durationpb.New(3 * time.Second), OfflinePolicy: forlockv1.OfflinePolicy_OFFLINE_POLICY_WAIT})
	time.Sleep(500 * time.Millisecond)
	got, _ := f.job(j.GetId())
	require.Equal(t, map[forlockv1.TaskState]int{forlockv1.TaskState_TASK_STATE_QUEUED: 2}, taskStates(got), "offline nodes wait")

	f.runAgent(agentOpts{name: "late", stateDir: lateDir, handlers: map[protocol.Kind]agent.TaskHandler{"health_check": late.handler()}})
	f.watch(j.GetId())
	final, _ := f.job(j.GetId())
	require.Equal(t, forlockv1.JobState_JOB_STATE_PARTIALLY_FAILED, final.GetState())
	byName := map[string]*forlockv1.Task{}
	for _, task := range final.GetTasks() {
		byName[task.GetNodeName()] = task
	}
	require.Equal(t, forlockv1.TaskState_TASK_STATE_SUCCEEDED, byName["late"].GetState())
	require.Equal(t, forlockv1.TaskState_TASK_STATE_SKIPPED, byName["never"].GetState())
	require.Contains(t, byName["never"].GetMessage(), "deadline")
	require.Contains(t, byName["never"].GetMessage(), "offline")
	require.EqualValues(t, 1, late.runs.Load())
	require.Zero(t, never.runs.Load())

	// With the skip policy, an offline node is skipped at once.
	j = f.submit(&forlockv1.Target{Nodes: []string{"never"}}, &forlockv1.Rollout{OfflinePolicy: forlockv1.OfflinePolicy_OFFLINE_POLICY_SKIP})
	f.watch(j.GetId())
	final, _ = f.job(j.GetId())
	require.Equal(t, forlockv1.TaskState_TASK_STATE_SKIPPED, final.GetTasks()[0].GetState())
	require.Contains(t, final.GetTasks()[0].GetMessage(), "offline")
}

func TestJobCancelReachesTheAgent(t *testing.T) {
	f := newFleet(t, nil)
	_, tasks := f.startFleetOf(3, func(int) *sleeper { return &sleeper{d: time.Hour} })
	j := f.submit(all, &forlockv1.Rollout{MaxParallel: 2})
	require.Eventually(t, func() bool {
		got, _ := f.job(j.GetId())
		return taskStates(got)[forlockv1.TaskState_TASK_STATE_RUNNING] == 2
	}, 10*time.Second, 10*time.Millisecond)
	_, err := f.jobs().CancelJob(f.admin(), &forlockv1.CancelJobRequest{Id: j.GetId(), Reason: "test"})
	require.NoError(t, err)
	f.watch(j.GetId())
	final, _ := f.job(j.GetId())
	require.Equal(t, forlockv1.JobState_JOB_STATE_CANCELLED, final.GetState())
	require.Equal(t, map[forlockv1.TaskState]int{forlockv1.TaskState_TASK_STATE_CANCELLED: 3}, taskStates(final))
	require.True(t, tasks[0].cancelled.Load() && tasks[1].cancelled.Load(), "the running handlers saw their context cancelled")
	require.Zero(t, tasks[2].runs.Load(), "the queued task never ran")

	_, err = f.jobs().CancelJob(f.admin(), &forlockv1.CancelJobRequest{Id: j.GetId()})
	require.Equal(t, codes.FailedPrecondition, status.Code(err))
}

func TestJobIdempotencyKey(t *testing.T) {
	f := newFleet(t, nil)
	f.startFleetOf(2, func(int) *sleeper { return &sleeper{d: time.Millisecond} })
	req := &forlockv1.SubmitJobRequest{
		Spec:   &forlockv1.JobSpec{Kind: &forlockv1.JobSpec_HealthCheck{HealthCheck: &forlockv1.HealthCheckSpec{}}},
		Target: all, IdempotencyKey: "nightly-2026-11-25",
	}
	var wg sync.WaitGroup
	resps := make([]*forlockv1.SubmitJobResponse, 4)
	for i := range resps {
		wg.Go(func() {
			r, err := f.jobs().SubmitJob(f.admin(), proto.CloneOf(req))
			require.NoError(t, err)
			resps[i] = r
		})
	}
	wg.Wait()
	created := 0
	for _, r := range resps {
		require.Equal(t, resps[0].GetJob().GetId(), r.GetJob().GetId())
		if r.GetCreated() {
			created++
		}
	}
	require.Equal(t, 1, created, "exactly one submit creates the job")
	list, err := f.jobs().ListJobs(f.admin(), &forlockv1.ListJobsRequest{})
	require.NoError(t, err)
	require.Len(t, list.GetJobs(), 1)
}

func TestTwoWatchersSeeTheSameEvents(t *testing.T) {
	f := newFleet(t, nil)
	f.startFleetOf(10, func(int) *sleeper { return &sleeper{d: 20 * time.Millisecond} })
	j := f.submit(all, &forlockv1.Rollout{MaxParallel: 3})
	results := make([][]*forlockv1.JobEvent, 2)
	var wg sync.WaitGroup
	for i := range results {
		wg.Go(func() { results[i] = f.watch(j.GetId()) })
	}
	wg.Wait()
	require.NotEmpty(t, results[0])
	require.Len(t, results[1], len(results[0]))
	for i := range results[0] {
		require.True(t, proto.Equal(results[0][i], results[1][i]), "event %d differs", i)
		require.EqualValues(t, i+1, results[0][i].GetSeq(), "events are numbered without gaps")
	}
	_, history := f.job(j.GetId())
	require.Len(t, history, len(results[0]), "the watchers saw the recorded history")
}

func TestJobValidation(t *testing.T) {
	f := newFleet(t, nil)
	f.startFleetOf(1, func(int) *sleeper { return &sleeper{} })
	spec := &forlockv1.JobSpec{Kind: &forlockv1.JobSpec_HealthCheck{HealthCheck: &forlockv1.HealthCheckSpec{}}}
	for name, req := range map[string]*forlockv1.SubmitJobRequest{
		"no kind":       {Spec: &forlockv1.JobSpec{}, Target: all},
		"no target":     {Spec: spec, Target: &forlockv1.Target{}},
		"two targets":   {Spec: spec, Target: &forlockv1.Target{All: true, LabelSelector: "a=b"}},
		"unknown node":  {Spec: spec, Target: &forlockv1.Target{Nodes: []string{"ghost"}}},
		"bad selector":  {Spec: spec, Target: &forlockv1.Target{LabelSelector: "A=="}},
		"no match":      {Spec: spec, Target: &forlockv1.Target{LabelSelector: "env=nowhere"}},
		"long deadline": {Spec: spec, Target: all, Rollout: &forlockv1.Rollout{Deadline: durationpb.New(30 * 24 * time.Hour)}},
		"bad policy":    {Spec: spec, Target: all, Rollout: &forlockv1.Rollout{OfflinePolicy: 9}},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := f.jobs().SubmitJob(f.admin(), req)
			require.Equal(t, codes.InvalidArgument, status.Code(err), "%v", err)
		})
	}
	_, err := f.jobs().GetJob(f.admin(), &forlockv1.GetJobRequest{Id: "nope"})
	require.Equal(t, codes.NotFound, status.Code(err))
}
