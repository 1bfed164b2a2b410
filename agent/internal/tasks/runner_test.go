package tasks

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"

	"github.com/forlock/fleet/agent/internal/journal"
	"github.com/forlock/fleet/internal/protocol"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// sink is a Sender that keeps what it is given.
type sink struct {
	ch     chan *forlockv1.TaskUpdate
	refuse atomic.Bool
}

func newSink() *sink { return &sink{ch: make(chan *forlockv1.TaskUpdate, 10000)} }

func (s *sink) TrySend(m *forlockv1.ConnectRequest) bool {
	if s.refuse.Load() {
		return false
	}
	s.ch <- m.GetTaskUpdate()
	return true
}

func (s *sink) Send(ctx context.Context, m *forlockv1.ConnectRequest) bool {
	if ctx.Err() != nil {
		return false
	}
	return s.TrySend(m)
}

// next returns the next update.
func (s *sink) next(t *testing.T) *forlockv1.TaskUpdate {
	t.Helper()
	select {
	case u := <-s.ch:
		return u
	case <-time.After(10 * time.Second):
		t.Fatal("no task update within 10s")
		return nil
	}
}

// nextFor returns the next update of task id, passing over the others (a
// final update not acknowledged yet is sent again, and under load such a
// resend of an earlier task can come first).
func (s *sink) nextFor(t *testing.T, id string) *forlockv1.TaskUpdate {
	t.Helper()
	for {
		if u := s.next(t); u.GetTaskId() == id {
			return u
		}
	}
}

// final returns the next update that is not RUNNING.
func (s *sink) final(t *testing.T) *forlockv1.TaskUpdate {
	t.Helper()
	for {
		if u := s.next(t); u.GetState() != forlockv1.TaskState_TASK_STATE_RUNNING {
			return u
		}
	}
}

func (s *sink) empty(t *testing.T) {
	t.Helper()
	select {
	case u := <-s.ch:
		t.Fatalf("unexpected update %v", u)
	case <-time.After(20 * time.Millisecond):
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) count(s string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Count(b.b.String(), s)
}

type fixture struct {
	dir  string
	j    *journal.Journal
	r    *Runner
	out  *sink
	logs *syncBuffer
	once sync.Once
}

// newFixture starts a runner on a journal in dir (a fresh one if empty),
// attached to a sink. Cleanup shuts it down.
func newFixture(t *testing.T, dir string, handlers map[protocol.Kind]Handler) *fixture {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	j, _, err := journal.Open(dir)
	require.NoError(t, err)
	logs := &syncBuffer{}
	r, err := New(Config{Journal: j, Handlers: handlers, AgentVersion: "v9.9.9",
		Logger: slog.New(slog.NewTextHandler(logs, nil)), ProgressInterval: 50 * time.Millisecond})
	require.NoError(t, err)
	f := &fixture{dir: dir, j: j, r: r, out: newSink(), logs: logs}
	r.Attach(f.out)
	t.Cleanup(f.stop)
	return f
}

// stop shuts the runner down and closes the journal, once.
func (f *fixture) stop() {
	f.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		f.r.Shutdown(ctx)
		_ = f.j.Close()
	})
}

func healthSpec() *forlockv1.JobSpec {
	return &forlockv1.JobSpec{Kind: &forlockv1.JobSpec_HealthCheck{HealthCheck: &forlockv1.HealthCheckSpec{}}}
}

func assign(id string) *forlockv1.ConnectResponse {
	return &forlockv1.ConnectResponse{Msg: &forlockv1.ConnectResponse_TaskAssignment{TaskAssignment: &forlockv1.TaskAssignment{
		TaskId: id, JobId: "job-1", Spec: healthSpec(),
	}}}
}

func cancelMsg(id, reason string) *forlockv1.ConnectResponse {
	return &forlockv1.ConnectResponse{Msg: &forlockv1.ConnectResponse_TaskCancel{TaskCancel: &forlockv1.TaskCancel{TaskId: id, Reason: reason}}}
}

func ackMsg(id string) *forlockv1.ConnectResponse {
	return &forlockv1.ConnectResponse{Msg: &forlockv1.ConnectResponse_TaskAck{TaskAck: &forlockv1.TaskAck{TaskId: id}}}
}

// gated is a handler that counts its runs and ends when released or when
// its context ends.
type gated struct {
	runs    atomic.Int32
	release chan struct{}
	started chan struct{}
}

func newGated() *gated { return &gated{release: make(chan struct{}), started: make(chan struct{}, 10)} }

func (g *gated) Run(ctx context.Context, _ Assignment, _ func(*forlockv1.Progress)) (Result, error) {
	g.runs.Add(1)
	g.started <- struct{}{}
	select {
	case <-g.release:
		return Result{Message: "done", Details: []string{"line 1"}}, nil
	case <-ctx.Done():
		return Result{Details: []string{"partial"}}, ctx.Err()
	}
}

func TestRepeatedAssignmentRunsOnce(t *testing.T) {
	g := newGated()
	f := newFixture(t, "", map[protocol.Kind]Handler{"health_check": g})

	require.True(t, f.r.Handle(assign("t1")))
	u := f.out.next(t)
	require.Equal(t, forlockv1.TaskState_TASK_STATE_RUNNING, u.GetState())
	require.Equal(t, "t1", u.GetTaskId())
	<-g.started

	require.True(t, f.r.Handle(assign("t1")), "again while it runs")
	require.Equal(t, forlockv1.TaskState_TASK_STATE_RUNNING, f.out.next(t).GetState())
	require.Equal(t, Stats{Started: 1, Running: 1}, f.r.Stats())

	close(g.release)
	u = f.out.final(t)
	require.Equal(t, forlockv1.TaskState_TASK_STATE_SUCCEEDED, u.GetState())
	require.Equal(t, "done", u.GetMessage())
	require.Equal(t, []string{"line 1"}, u.GetDetails())
	require.NotNil(t, u.GetAt())

	f.r.Handle(assign("t1"))
	require.Equal(t, forlockv1.TaskState_TASK_STATE_SUCCEEDED, f.out.next(t).GetState(), "after its end: its end again")
	require.Equal(t, int32(1), g.runs.Load())
	require.Equal(t, 1, f.logs.count(`msg="task started" task_id=t1 job_id=job-1 kind=health_check`))
	require.Equal(t, 1, f.logs.count(`msg="task finished" task_id=t1 job_id=job-1 kind=health_check state=succeeded`))

	// A restart: a new runner on the same journal still never runs it.
	f.stop()
	f2 := newFixture(t, f.dir, map[protocol.Kind]Handler{"health_check": g})
	require.Equal(t, forlockv1.TaskState_TASK_STATE_SUCCEEDED, f2.out.next(t).GetState(), "unacked: reported at attach")
	f2.r.Handle(assign("t1"))
	require.Equal(t, forlockv1.TaskState_TASK_STATE_SUCCEEDED, f2.out.next(t).GetState())
	require.Equal(t, int32(1), g.runs.Load())
	require.Zero(t, f2.logs.count("task started"))
}

func TestCancelReachesTheHandler(t *testing.T) {
	g := newGated()
	f := newFixture(t, "", map[protocol.Kind]Handler{"health_check": g})
	f.r.Handle(assign("t1"))
	<-g.started
	f.r.Handle(cancelMsg("t1", "operator asked"))
	u := f.out.final(t)
	require.Equal(t, forlockv1.TaskState_TASK_STATE_CANCELLED, u.GetState())
	require.Equal(t, "cancelled by the control plane: operator asked", u.GetMessage())
	require.Equal(t, []string{"partial"}, u.GetDetails())

	e, err := f.j.Get("t1")
	require.NoError(t, err)
	require.Equal(t, journal.Cancelled, e.State)

	f.r.Handle(cancelMsg("t1", "again"))
	require.Equal(t, forlockv1.TaskState_TASK_STATE_CANCELLED, f.out.next(t).GetState(), "a cancel of an ended task reports its end")
}

func TestCancelOfAnUnknownTaskBlocksItsAssignment(t *testing.T) {
	g := newGated()
	f := newFixture(t, "", map[protocol.Kind]Handler{"health_check": g})
	f.r.Handle(cancelMsg("t9", "job cancelled"))
	u := f.out.next(t)
	require.Equal(t, forlockv1.TaskState_TASK_STATE_CANCELLED, u.GetState())
	require.Equal(t, "cancelled before the agent received it: job cancelled", u.GetMessage())

	f.r.Handle(assign("t9"))
	require.Equal(t, forlockv1.TaskState_TASK_STATE_CANCELLED, f.out.next(t).GetState())
	require.Zero(t, g.runs.Load(), "never run")
}

func TestPanicFailsTheTaskAndTheAgentSurvives(t *testing.T) {
	calls := atomic.Int32{}
	h := HandlerFunc(func(context.Context, Assignment, func(*forlockv1.Progress)) (Result, error) {
		if calls.Add(1) == 1 {
			panic("boom")
		}
		return Result{Message: "fine"}, nil
	})
	f := newFixture(t, "", map[protocol.Kind]Handler{"health_check": h})
	f.r.Handle(assign("t1"))
	u := f.out.final(t)
	require.Equal(t, forlockv1.TaskState_TASK_STATE_FAILED, u.GetState())
	require.Equal(t, "task handler panicked: boom", u.GetMessage())

	f.r.Handle(assign("t2"))
	u = f.out.final(t)
	require.Equal(t, forlockv1.TaskState_TASK_STATE_SUCCEEDED, u.GetState())
	require.Equal(t, "fine", u.GetMessage())
}

func TestHandlerErrorAndUnknownKind(t *testing.T) {
	f := newFixture(t, "", map[protocol.Kind]Handler{"other": HandlerFunc(func(context.Context, Assignment, func(*forlockv1.Progress)) (Result, error) {
		return Result{}, nil
	})})
	f.r.Handle(assign("t1"))
	u := f.out.next(t)
	require.Equal(t, forlockv1.TaskState_TASK_STATE_FAILED, u.GetState(), "no RUNNING for a task that never runs")
	require.Equal(t, "this agent does not support job kind health_check (agent version v9.9.9)", u.GetMessage())

	f.r.Handle(&forlockv1.ConnectResponse{Msg: &forlockv1.ConnectResponse_TaskAssignment{TaskAssignment: &forlockv1.TaskAssignment{TaskId: "t2"}}})
	require.Equal(t, "this agent does not support job kind (unknown to this agent's API) (agent version v9.9.9)", f.out.nextFor(t, "t2").GetMessage())
	require.Zero(t, f.logs.count("task started"))

	f2 := newFixture(t, "", map[protocol.Kind]Handler{"health_check": HandlerFunc(func(context.Context, Assignment, func(*forlockv1.Progress)) (Result, error) {
		return Result{Details: []string{"disk CRITICAL"}}, errors.New("critical: disk")
	})})
	f2.r.Handle(assign("t3"))
	u = f2.out.final(t)
	require.Equal(t, forlockv1.TaskState_TASK_STATE_FAILED, u.GetState())
	require.Equal(t, "critical: disk", u.GetMessage())
	require.Equal(t, []string{"disk CRITICAL"}, u.GetDetails())

	require.False(t, f2.r.Handle(&forlockv1.ConnectResponse{}), "not a task message")
}

func TestProgressIsRateLimitedAndKeepsTheLatest(t *testing.T) {
	const reports = 2000
	release := make(chan struct{})
	var elapsed time.Duration
	h := HandlerFunc(func(_ context.Context, _ Assignment, report func(*forlockv1.Progress)) (Result, error) {
		start := time.Now()
		for i := 1; i <= reports; i++ {
			report(&forlockv1.Progress{Phase: "copy", BytesDone: uint64(i), BytesTotal: reports})
		}
		elapsed = time.Since(start)
		<-release
		return Result{}, nil
	})
	f := newFixture(t, "", map[protocol.Kind]Handler{"health_check": h})
	f.r.Handle(assign("t1"))
	require.Nil(t, f.out.next(t).GetProgress(), "first the plain RUNNING")
	var got []uint64
	for {
		u := f.out.next(t)
		require.Equal(t, forlockv1.TaskState_TASK_STATE_RUNNING, u.GetState())
		got = append(got, u.GetProgress().GetBytesDone())
		if u.GetProgress().GetBytesDone() == reports {
			break
		}
	}
	close(release)
	require.Equal(t, forlockv1.TaskState_TASK_STATE_SUCCEEDED, f.out.final(t).GetState())
	require.IsIncreasing(t, got)
	// One update per interval at most, plus the first at once.
	require.LessOrEqual(t, len(got), int(elapsed/(50*time.Millisecond))+2, "updates %v in %s", got, elapsed)
}

func TestShutdownInterruptsRunningTasks(t *testing.T) {
	g := newGated()
	f := newFixture(t, "", map[protocol.Kind]Handler{"health_check": g})
	f.r.Handle(assign("t1"))
	<-g.started
	f.stop()
	require.Equal(t, forlockv1.TaskState_TASK_STATE_INTERRUPTED, f.out.final(t).GetState(), "reported if a session is attached")

	j, interrupted, err := journal.Open(f.dir)
	require.NoError(t, err)
	defer func() { _ = j.Close() }()
	require.Empty(t, interrupted, "the runner recorded the end itself")
	e, err := j.Get("t1")
	require.NoError(t, err)
	require.Equal(t, journal.Interrupted, e.State)
	require.Equal(t, ShutdownMessage, e.Message)
	require.False(t, e.Acked)
}

func TestAssignmentsAfterShutdownAreNotJournaled(t *testing.T) {
	f := newFixture(t, "", map[protocol.Kind]Handler{"health_check": newGated()})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	f.r.Shutdown(ctx)
	f.r.Handle(assign("t1"))
	_, err := f.j.Get("t1")
	require.ErrorIs(t, err, journal.ErrNotFound, "the control plane will assign it again")
}

func TestUnackedEndsAreResentUntilAcked(t *testing.T) {
	g := newGated()
	close(g.release)
	f := newFixture(t, "", map[protocol.Kind]Handler{"health_check": g})
	f.out.refuse.Store(true) // the outbox is full: the end is only journaled
	f.r.Handle(assign("t1"))
	require.Eventually(t, func() bool {
		e, err := f.j.Get("t1")
		return err == nil && e.State == journal.Succeeded
	}, 10*time.Second, time.Millisecond)
	f.out.empty(t)

	// A reconnect: a new session gets the end.
	f.r.Detach(f.out)
	out2 := newSink()
	f.r.Attach(out2)
	require.Equal(t, forlockv1.TaskState_TASK_STATE_SUCCEEDED, out2.next(t).GetState())

	f.r.Handle(ackMsg("t1"))
	f.r.Handle(ackMsg("unknown")) // ignored
	f.r.Detach(out2)
	out3 := newSink()
	f.r.Attach(out3)
	out3.empty(t)
	f.r.Detach(out3)
	f.r.Detach(out3) // harmless
}

func TestHealthReportTravelsWithTheEndAndSurvivesARestart(t *testing.T) {
	report := &forlockv1.HealthReport{Checks: []*forlockv1.CheckResult{
		{Name: "redis", Status: forlockv1.CheckStatus_CHECK_STATUS_CRITICAL, Message: "PING failed"}}}
	h := HandlerFunc(func(context.Context, Assignment, func(*forlockv1.Progress)) (Result, error) {
		return Result{Details: []string{"redis CRITICAL PING failed"}, Health: report}, errors.New("CRITICAL: redis PING failed")
	})
	dir := t.TempDir()
	f := newFixture(t, dir, map[protocol.Kind]Handler{"health_check": h})
	f.r.Handle(assign("t1"))
	u := f.out.final(t)
	require.Equal(t, forlockv1.TaskState_TASK_STATE_FAILED, u.GetState())
	require.True(t, proto.Equal(report, u.GetHealth()), "the failed task carries its report")

	f.stop() // a restart: the journal reports the unacknowledged end again
	f2 := newFixture(t, dir, nil)
	f2.r.Handle(assign("t1"))
	u = f2.out.next(t)
	require.Equal(t, forlockv1.TaskState_TASK_STATE_FAILED, u.GetState())
	require.True(t, proto.Equal(report, u.GetHealth()), "the journal kept the report")
}

func TestRolledBackTaskReportsItsResultAndBackup(t *testing.T) {
	art := &forlockv1.Artifact{Kind: forlockv1.ArtifactKind_ARTIFACT_KIND_POSTGRES, Location: "/var/backups/forlock/n/p.dump.zst.enc"}
	up := &forlockv1.UpgradeResult{RolledBack: true, Reason: "api not healthy within 2m0s",
		Before: &forlockv1.Release{Id: "aaaaaaaaaaaa"}, After: &forlockv1.Release{Id: "aaaaaaaaaaaa"}}
	var gotPair *forlockv1.CertificatePair
	f := newFixture(t, "", map[protocol.Kind]Handler{"health_check": HandlerFunc(func(_ context.Context, a Assignment, _ func(*forlockv1.Progress)) (Result, error) {
		gotPair = proto.CloneOf(a.Certificate)
		return Result{RolledBack: true, Upgrade: up, Artifacts: []*forlockv1.Artifact{art}}, errors.New("api not healthy within 2m0s: rolled back")
	})})
	m := assign("t1")
	m.GetTaskAssignment().Certificate = &forlockv1.CertificatePair{CertificatePem: "cert"}
	f.r.Handle(m)
	u := f.out.final(t)
	require.Equal(t, forlockv1.TaskState_TASK_STATE_ROLLED_BACK, u.GetState())
	require.Equal(t, "api not healthy within 2m0s: rolled back", u.GetMessage())
	require.True(t, proto.Equal(up, u.GetUpgrade()), "the upgrade result travels with the end")
	require.Len(t, u.GetArtifacts(), 1, "the pre-upgrade backup is reported although the upgrade failed")
	require.Equal(t, "cert", gotPair.GetCertificatePem())
}
