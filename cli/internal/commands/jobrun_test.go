package commands

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// fakeJobs is a scripted JobService: one job whose history and final state
// are fixed. It checks the client's side of the contract, not the engine.
type fakeJobs struct {
	forlockv1.UnimplementedJobServiceServer
	final  *forlockv1.Job
	events []*forlockv1.JobEvent
	// breakFirst: the first watch sends two events, then fails as a
	// restarting control plane does.
	breakFirst bool
	// hold: every watch sends its snapshot, reports on watching and waits
	// for the client to go away.
	hold     bool
	watching chan struct{}

	mu      sync.Mutex
	submits []*forlockv1.SubmitJobRequest
	watches []*forlockv1.WatchJobRequest
	cancels int
	lists   []*forlockv1.ListJobsRequest
}

func (f *fakeJobs) SubmitJob(_ context.Context, req *forlockv1.SubmitJobRequest) (*forlockv1.SubmitJobResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.submits = append(f.submits, req)
	return &forlockv1.SubmitJobResponse{Job: &forlockv1.Job{Id: f.final.GetId(), Kind: "health_check", State: jRunning}, Created: true}, nil
}

func (f *fakeJobs) GetJob(_ context.Context, req *forlockv1.GetJobRequest) (*forlockv1.GetJobResponse, error) {
	if req.GetId() != f.final.GetId() {
		return nil, status.Errorf(codes.NotFound, "job %q not found", req.GetId())
	}
	return &forlockv1.GetJobResponse{Job: f.final}, nil
}

func (f *fakeJobs) ListJobs(_ context.Context, req *forlockv1.ListJobsRequest) (*forlockv1.ListJobsResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lists = append(f.lists, req)
	return &forlockv1.ListJobsResponse{Jobs: []*forlockv1.Job{f.final}, NextPageToken: "p2"}, nil
}

func (f *fakeJobs) CancelJob(context.Context, *forlockv1.CancelJobRequest) (*forlockv1.CancelJobResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cancels++
	return &forlockv1.CancelJobResponse{Job: f.final}, nil
}

func (f *fakeJobs) WatchJob(req *forlockv1.WatchJobRequest, stream grpc.ServerStreamingServer[forlockv1.WatchJobResponse]) error {
	f.mu.Lock()
	f.watches = append(f.watches, req)
	n := len(f.watches)
	f.mu.Unlock()
	if req.GetId() != f.final.GetId() {
		return status.Errorf(codes.NotFound, "job %q not found", req.GetId())
	}
	if err := stream.Send(&forlockv1.WatchJobResponse{Msg: &forlockv1.WatchJobResponse_Snapshot{Snapshot: f.final}}); err != nil {
		return err
	}
	if f.hold {
		f.watching <- struct{}{}
		<-stream.Context().Done()
		return nil
	}
	events := f.events
	if f.breakFirst && n == 1 {
		events = events[:2]
	}
	for _, ev := range events {
		if err := stream.Send(&forlockv1.WatchJobResponse{Msg: &forlockv1.WatchJobResponse_Event{Event: ev}}); err != nil {
			return err
		}
	}
	if f.breakFirst && n == 1 {
		return status.Error(codes.Unavailable, "control plane shutting down")
	}
	return nil
}

func startJobServer(t *testing.T, srv forlockv1.JobServiceServer) map[string]string {
	t.Helper()
	pki := newTestPKI(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	s := grpc.NewServer(grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{pki.server}})))
	forlockv1.RegisterJobServiceServer(s, srv)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.Serve(l)
	}()
	t.Cleanup(func() {
		s.Stop()
		<-done
	})
	return map[string]string{envAddr: l.Addr().String(), envCAFile: pki.caFile, envToken: "tok", "HOME": t.TempDir()}
}

func healthJob(state forlockv1.JobState, states ...forlockv1.TaskState) (*forlockv1.Job, []*forlockv1.JobEvent) {
	at := timestamppb.New(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	j := &forlockv1.Job{Id: "j1", Kind: "health_check", State: state, CreatedAt: at, FinishedAt: at}
	var events []*forlockv1.JobEvent
	for i, st := range states {
		name := "web-" + string(rune('1'+i))
		tk := task("t"+name, name, st)
		tk.Details = []string{"disk /: ok", "memory: ok"}
		j.Tasks = append(j.Tasks, tk)
		events = append(events,
			&forlockv1.JobEvent{Seq: uint64(2*i + 1), At: at, TaskId: tk.Id, NodeName: name, TaskState: tRunning, JobState: jRunning},
			&forlockv1.JobEvent{Seq: uint64(2*i + 2), At: at, TaskId: tk.Id, NodeName: name, TaskState: st, JobState: jRunning})
	}
	events[len(events)-1].JobState = state
	return j, events
}

func TestHealthCheckExitCodes(t *testing.T) {
	tests := []struct {
		name   string
		state  forlockv1.JobState
		tasks  []forlockv1.TaskState
		code   int
		stderr string
	}{
		{"all succeeded", jSucceeded, []forlockv1.TaskState{tSucceeded, tSucceeded}, ExitOK, ""},
		{"some failed", jPartial, []forlockv1.TaskState{tSucceeded, tFailed}, 2, "forlockctl: job j1 partially failed: 1 of 2 tasks succeeded\n"},
		{"none succeeded", jFailed, []forlockv1.TaskState{tFailed, tInterrupt}, ExitFailure, "forlockctl: job j1 failed: none of its 2 tasks succeeded\n"},
		{"cancelled", jCancelled, []forlockv1.TaskState{tSucceeded, tCancelled}, ExitFailure, "forlockctl: job j1 was cancelled\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			final, events := healthJob(tt.state, tt.tasks...)
			srv := &fakeJobs{final: final, events: events}
			env := startJobServer(t, srv)
			code, stdout, stderr := run(t, env, "health-check", "--node", "web-1,web-2", "--max-parallel", "1")
			require.Equal(t, tt.code, code, "stderr: %s", stderr)
			require.Equal(t, tt.stderr, stderr)
			require.Contains(t, stdout, "job j1 health_check on 2 nodes")
			require.Contains(t, stdout, "#4 12:00:00Z web-2 "+taskStateName(tt.tasks[1])+"\n")
			require.Contains(t, stdout, "\njob j1 health_check "+jobStateName(tt.state)+" in 0s:")
			require.Contains(t, stdout, "web-1  "+taskStateName(tt.tasks[0]))
			require.Contains(t, stdout, "\n    disk /: ok\n    memory: ok\n", "the checks are shown under their node")

			require.Len(t, srv.submits, 1)
			sub := srv.submits[0]
			require.NotNil(t, sub.GetSpec().GetHealthCheck())
			require.Equal(t, []string{"web-1", "web-2"}, sub.GetTarget().GetNodes())
			require.Equal(t, uint32(1), sub.GetRollout().GetMaxParallel())
			require.True(t, srv.watches[0].GetFromStart())
		})
	}
}

func TestHealthCheckJSONPrintsOnlyTheFinalJob(t *testing.T) {
	final, events := healthJob(jPartial, tSucceeded, tFailed)
	env := startJobServer(t, &fakeJobs{final: final, events: events})
	code, stdout, stderr := run(t, env, "-o", "json", "health-check", "--all")
	require.Equal(t, 2, code)
	var doc map[string]any
	require.NoError(t, json.Unmarshal([]byte(stdout), &doc), stdout)
	require.Equal(t, "j1", doc["id"])
	require.Equal(t, "JOB_STATE_PARTIALLY_FAILED", doc["state"])
	require.Contains(t, stderr, "#4 12:00:00Z web-2 failed", "the live view goes to stderr")
}

func TestHealthCheckDetach(t *testing.T) {
	final, events := healthJob(jSucceeded, tSucceeded)
	srv := &fakeJobs{final: final, events: events}
	env := startJobServer(t, srv)
	code, stdout, stderr := run(t, env, "health-check", "-l", "env=prod", "--detach", "--idempotency-key", "k1")
	require.Equal(t, ExitOK, code, stderr)
	require.Equal(t, "j1\n", stdout)
	require.Empty(t, srv.watches)
	require.Equal(t, "k1", srv.submits[0].GetIdempotencyKey())
}

func TestWatchResumesAfterBrokenStream(t *testing.T) {
	final, events := healthJob(jSucceeded, tSucceeded, tSucceeded)
	srv := &fakeJobs{final: final, events: events, breakFirst: true}
	env := startJobServer(t, srv)
	code, stdout, stderr := run(t, env, "jobs", "watch", "j1")
	require.Equal(t, ExitOK, code, stderr)
	require.Contains(t, stderr, "forlockctl: watch of job j1 broke (")
	for seq := 1; seq <= 4; seq++ {
		require.Equal(t, 1, strings.Count(stdout, "\n#"+string(rune('0'+seq))+" "), "event %d shown once:\n%s", seq, stdout)
	}
	require.Len(t, srv.watches, 2)
	require.False(t, srv.watches[0].GetFromStart())
	require.True(t, srv.watches[1].GetFromStart(), "resume by replay, skipping what was shown")
}

func TestInterruptedWatchLeavesTheJobRunning(t *testing.T) {
	final, _ := healthJob(jRunning, tRunning)
	srv := &fakeJobs{final: final, hold: true, watching: make(chan struct{}, 1)}
	env := startJobServer(t, srv)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-srv.watching
		cancel() // what Ctrl-C does through signal.NotifyContext
	}()
	var out, errOut bytes.Buffer
	code := Run(ctx, []string{"health-check", "--all"}, IO{In: strings.NewReader(""), Out: &out, Err: &errOut,
		Getenv: func(k string) string { return env[k] }})
	require.Equal(t, ExitInterrupted, code)
	require.Equal(t, "forlockctl: job j1 keeps running; forlockctl jobs watch j1\n", errOut.String())
	srv.mu.Lock()
	defer srv.mu.Unlock()
	require.Zero(t, srv.cancels, "Ctrl-C must not cancel the job")
}

func TestJobsGetAndCancel(t *testing.T) {
	final, _ := healthJob(jCancelled, tSucceeded, tCancelled)
	srv := &fakeJobs{final: final}
	env := startJobServer(t, srv)

	code, stdout, stderr := run(t, env, "jobs", "get", "j1")
	require.Equal(t, ExitOK, code, stderr)
	require.Contains(t, stdout, "State:     cancelled\n")
	require.Contains(t, stdout, "web-2  cancelled")

	code, _, stderr = run(t, env, "jobs", "get", "nope")
	require.Equal(t, ExitFailure, code)
	require.Equal(t, "forlockctl: job \"nope\" not found\n", stderr)

	code, stdout, stderr = run(t, env, "jobs", "cancel", "j1", "--reason", "window over")
	require.Equal(t, ExitOK, code, stderr)
	require.Contains(t, stdout, "Cancelled job j1")
	require.Equal(t, 1, srv.cancels)
}

func TestJobsList(t *testing.T) {
	final, _ := healthJob(jPartial, tSucceeded, tFailed, tSkipped)
	srv := &fakeJobs{final: final}
	env := startJobServer(t, srv)
	code, stdout, stderr := run(t, env, "jobs", "list", "--node", "web-1", "--kind", "health_check",
		"--state", "failed,partially-failed", "--since", "2026-03-01T00:00:00Z", "--until", "2026-03-02T00:00:00Z",
		"--limit", "10", "--page-token", "p1")
	require.Equal(t, ExitOK, code, stderr)
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	require.Equal(t, []string{"ID", "KIND", "STATE", "TASKS", "CREATED"}, strings.Fields(lines[0]))
	require.Equal(t, []string{"j1", "health_check", "partially-failed", "1/1/1/3"}, strings.Fields(lines[1])[:4])
	require.Equal(t, "more jobs: repeat the command with --page-token p2\n", stderr)

	req := srv.lists[0]
	require.Equal(t, "web-1", req.GetNode())
	require.Equal(t, "health_check", req.GetKind())
	require.Equal(t, []forlockv1.JobState{jFailed, jPartial}, req.GetStates())
	require.Equal(t, time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), req.GetCreatedAfter().AsTime())
	require.Equal(t, time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC), req.GetCreatedBefore().AsTime())
	require.Equal(t, uint32(10), req.GetPageSize())
	require.Equal(t, "p1", req.GetPageToken())
}
