package tasks

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/forlock/fleet/agent/internal/journal"
	"github.com/forlock/fleet/internal/protocol"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// task is one task running in this process.
type task struct {
	id, jobID string
	kind      protocol.Kind
	startedAt time.Time
	cancel    context.CancelCauseFunc
	kick      chan struct{} // a new progress report is waiting

	mu       sync.Mutex
	progress *forlockv1.Progress // latest report
}

func newTask(e journal.Entry, cancel context.CancelCauseFunc) *task {
	return &task{id: e.TaskID, jobID: e.JobID, kind: e.Kind, startedAt: e.StartedAt, cancel: cancel,
		kick: make(chan struct{}, 1)}
}

func (t *task) attrs(more ...any) []any {
	return append([]any{"task_id", t.id, "job_id", t.jobID, "kind", t.kind}, more...)
}

// report keeps p as the latest progress and wakes the progress pump.
func (t *task) report(p *forlockv1.Progress) {
	if p == nil {
		return
	}
	p = proto.CloneOf(p)
	t.mu.Lock()
	t.progress = p
	t.mu.Unlock()
	select {
	case t.kick <- struct{}{}:
	default:
	}
}

// runningUpdate reports the task running, with its latest progress.
func (t *task) runningUpdate() *forlockv1.ConnectRequest {
	t.mu.Lock()
	p := t.progress
	t.mu.Unlock()
	at := t.startedAt
	if p != nil {
		at = time.Now()
	}
	return update(&forlockv1.TaskUpdate{
		TaskId: t.id, State: forlockv1.TaskState_TASK_STATE_RUNNING, Progress: p, At: timestamppb.New(at),
	})
}

// pumpProgress sends the latest progress at most once per interval until
// done is closed.
func (r *Runner) pumpProgress(t *task, done <-chan struct{}) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	<-timer.C
	for {
		select {
		case <-done:
			return
		case <-t.kick:
		}
		r.send(t.runningUpdate())
		timer.Reset(r.cfg.ProgressInterval)
		select {
		case <-done:
			return
		case <-timer.C:
		}
	}
}

// run runs one task to its end, wipes its secrets, journals the end, then
// reports it.
func (r *Runner) run(ctx context.Context, t *task, h Handler, a Assignment) {
	defer r.wg.Done()
	done := make(chan struct{})
	var pump sync.WaitGroup
	pump.Go(func() { r.pumpProgress(t, done) })

	res, err := r.call(ctx, t, h, a)
	a.wipe()
	close(done)
	pump.Wait()
	state, msg := outcome(ctx, res, err)
	o := journal.Outcome{Details: res.Details}
	if res.Health != nil && (state == journal.Succeeded || state == journal.Failed) {
		var merr error
		if o.Health, merr = proto.Marshal(res.Health); merr != nil {
			r.log.Error("cannot encode a task's health report; reporting the task without it", t.attrs("error", merr)...)
			o.Health = nil
		}
	}
	if state == journal.Succeeded || res.Upgrade != nil || drilled(res.Artifacts) {
		// A succeeded task's artifacts are reported, an upgrade's
		// pre-upgrade backup whatever its end (the backup is whole), and a
		// failed restore drill's artifacts with the drill's result.
		for _, a := range res.Artifacts {
			b, merr := proto.Marshal(a)
			if merr != nil {
				r.log.Error("cannot encode a task's artifact; the task fails", t.attrs("error", merr)...)
				state, msg, o.Artifacts = journal.Failed, "cannot encode the artifacts written: "+merr.Error(), nil
				break
			}
			o.Artifacts = append(o.Artifacts, b)
		}
	}

	for _, m := range []struct {
		msg proto.Message
		out *[]byte
	}{{res.Upgrade, &o.Upgrade}, {res.Certificate, &o.Certificate}} {
		if m.msg == nil || !m.msg.ProtoReflect().IsValid() {
			continue
		}
		var merr error
		if *m.out, merr = proto.Marshal(m.msg); merr != nil {
			r.log.Error("cannot encode a task's result", t.attrs("error", merr)...)
		}
	}

	e, ferr := r.cfg.Journal.Finish(t.id, state, msg, o)
	r.mu.Lock()
	delete(r.running, t.id)
	r.mu.Unlock()
	t.cancel(nil)
	if ferr != nil {
		r.log.Error("cannot journal the end of a task", t.attrs("state", string(state), "message", msg, "error", ferr)...)
		return
	}
	r.log.Info("task finished", t.attrs("state", string(e.State), "message", e.Message,
		"duration", e.FinishedAt.Sub(e.StartedAt).Round(time.Millisecond).String())...)
	r.send(entryUpdate(e))
}

// errPanic marks a handler panic.
var errPanic = errors.New("task handler panicked")

// call runs the handler, turning a panic into an error.
func (r *Runner) call(ctx context.Context, t *task, h Handler, a Assignment) (res Result, err error) {
	defer func() {
		if p := recover(); p != nil {
			r.log.Error("task handler panicked", t.attrs("panic", fmt.Sprint(p), "stack", string(debug.Stack()))...)
			res, err = Result{}, fmt.Errorf("%w: %v", errPanic, p)
		}
	}()
	return h.Run(ctx, a, t.report)
}

// outcome decides a task's end state from what its handler returned and
// why its context ended, if it did.
func outcome(ctx context.Context, res Result, err error) (journal.State, string) {
	if err == nil {
		return journal.Succeeded, res.Message
	}
	if errors.Is(err, errPanic) {
		return journal.Failed, err.Error()
	}
	cause := context.Cause(ctx)
	if ce := (*cancelError)(nil); errors.As(cause, &ce) {
		return journal.Cancelled, ce.Error()
	}
	if errors.Is(cause, errShutdown) {
		return journal.Interrupted, ShutdownMessage
	}
	if res.RolledBack {
		return journal.RolledBack, err.Error()
	}
	return journal.Failed, err.Error()
}

// drilled reports whether artifacts carry a restore drill's result.
func drilled(arts []*forlockv1.Artifact) bool {
	for _, a := range arts {
		if a.GetDrill() != nil {
			return true
		}
	}
	return false
}
