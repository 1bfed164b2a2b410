// Package tasks runs the tasks the control plane assigns to this agent,
// exactly once each.
//
// The Runner takes the task messages of the control stream (TaskAssignment,
// TaskCancel, TaskAck). For an assignment whose task ID the journal already
// holds, it reports the task's current state again and never runs it; for a
// new one it journals the task as running first, then runs the handler of
// the spec's kind in its own goroutine, with the task's Assignment (spec,
// IDs, keys, certificate) and a context that a TaskCancel or the agent's
// shutdown cancels; when the handler returns, the plain keys are wiped and
// the certificate's private key dropped. Progress goes out rate-limited, the latest
// first; the end is journaled before it is reported, and every unacknowledged
// end is reported again after each reconnect until the control plane acks it.
//
// Tasks outlive control sessions: the runner sends through whichever
// session is attached, never blocking the session's loop. A message that
// cannot be queued is not lost for good: the journal holds every end state
// and the control plane reassigns tasks whose end it has not seen.
package tasks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/forlock/fleet/agent/internal/journal"
	"github.com/forlock/fleet/internal/protocol"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// Sender queues messages on the current control stream; session.Outbox is
// one.
type Sender interface {
	// TrySend queues m without blocking and reports whether it did.
	TrySend(m *forlockv1.ConnectRequest) bool
	// Send queues m, waiting for room until ctx or the stream ends.
	Send(ctx context.Context, m *forlockv1.ConnectRequest) bool
}

// DefaultProgressInterval is the least time between two progress updates
// of one task.
const DefaultProgressInterval = 250 * time.Millisecond

// Messages of tasks that did not end by themselves.
const (
	ShutdownMessage    = "agent shut down while the task was running"
	stuckMessage       = ShutdownMessage + " (the task did not stop in time)"
	cancelledMessage   = "cancelled by the control plane"
	cancelUnknownIntro = "cancelled before the agent received it"
)

// Config configures a Runner.
type Config struct {
	// Journal records every task. Required.
	Journal *journal.Journal
	// Handlers run the tasks, keyed by job kind (see protocol.KindOf).
	Handlers map[protocol.Kind]Handler
	// AgentVersion is named when a kind is not supported.
	AgentVersion string
	// Logger receives task events; nil discards them.
	Logger *slog.Logger
	// ProgressInterval is the least time between two progress updates of
	// a task; zero means DefaultProgressInterval.
	ProgressInterval time.Duration
}

// Stats counts a runner's tasks.
type Stats struct {
	// Started counts the tasks this runner executed (handler called).
	Started uint64
	// Running is how many are running now.
	Running int
}

// Runner runs assigned tasks. Create it with New; it is safe for
// concurrent use.
type Runner struct {
	cfg     Config
	log     *slog.Logger
	started atomic.Uint64

	// handleMu makes each Handle call one step: the running-map check,
	// the journal look-up and Begin happen together.
	handleMu sync.Mutex

	mu         sync.Mutex
	sender     Sender             // nil while no session is attached
	stopResend context.CancelFunc // ends the current resend of unacked ends
	running    map[string]*task
	closed     bool
	wg         sync.WaitGroup // task and resend goroutines
}

// errShutdown is the cancel cause of tasks when the agent shuts down.
var errShutdown = errors.New(ShutdownMessage)

// cancelError is the cancel cause of a TaskCancel.
type cancelError struct{ reason string }

func (e *cancelError) Error() string {
	if e.reason == "" {
		return cancelledMessage
	}
	return cancelledMessage + ": " + e.reason
}

// New checks cfg and returns a Runner.
func New(cfg Config) (*Runner, error) {
	if cfg.Journal == nil {
		return nil, errors.New("tasks: no journal")
	}
	for kind, h := range cfg.Handlers {
		if kind == "" || h == nil {
			return nil, fmt.Errorf("tasks: handler for kind %q is missing or unnamed", kind)
		}
	}
	cfg.Handlers = maps.Clone(cfg.Handlers)
	if cfg.ProgressInterval <= 0 {
		cfg.ProgressInterval = DefaultProgressInterval
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Runner{cfg: cfg, log: log, running: map[string]*task{}}, nil
}

// Stats returns the runner's counters.
func (r *Runner) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return Stats{Started: r.started.Load(), Running: len(r.running)}
}

// Attach makes s the path for task updates, after a ServerHello: it sends
// every unacknowledged end from the journal and the state of every running
// task, in a goroutine that stops when s's stream ends, Detach or Shutdown.
func (r *Runner) Attach(s Sender) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopResend != nil {
		r.stopResend()
	}
	r.sender = s
	if r.closed {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.stopResend = cancel
	running := slices.Collect(maps.Values(r.running))
	r.wg.Go(func() {
		defer cancel()
		ends, err := r.cfg.Journal.Unacked()
		if err != nil {
			r.log.Error("cannot read unacknowledged task results from the journal", "error", err)
		}
		for _, e := range ends {
			if !s.Send(ctx, entryUpdate(e)) {
				return
			}
		}
		for _, t := range running {
			if !s.Send(ctx, t.runningUpdate()) {
				return
			}
		}
		if len(ends) > 0 {
			r.log.Info("reported unacknowledged task results again", "count", len(ends))
		}
	})
}

// Detach forgets s if it is the current sender (its session ended).
func (r *Runner) Detach(s Sender) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.sender != s {
		return
	}
	r.sender = nil
	if r.stopResend != nil {
		r.stopResend()
		r.stopResend = nil
	}
}

// send queues m on the current session, if any, without blocking.
func (r *Runner) send(m *forlockv1.ConnectRequest) bool {
	r.mu.Lock()
	s := r.sender
	r.mu.Unlock()
	return s != nil && s.TrySend(m)
}

// Shutdown stops the runner: it takes no new task, cancels the running
// ones (they end interrupted) and waits for them until ctx ends. Tasks
// still running then are journaled as interrupted anyway.
func (r *Runner) Shutdown(ctx context.Context) {
	r.mu.Lock()
	r.closed = true
	if r.stopResend != nil {
		r.stopResend()
		r.stopResend = nil
	}
	for _, t := range r.running {
		t.cancel(errShutdown)
	}
	r.mu.Unlock()

	done := make(chan struct{})
	go func() {
		r.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return
	case <-ctx.Done():
	}
	r.mu.Lock()
	stuck := slices.Collect(maps.Values(r.running))
	r.mu.Unlock()
	for _, t := range stuck {
		e, err := r.cfg.Journal.Finish(t.id, journal.Interrupted, stuckMessage, journal.Outcome{})
		if err != nil {
			r.log.Error("cannot journal a task that did not stop", "task_id", t.id, "error", err)
			continue
		}
		r.log.Error("task did not stop on shutdown; recorded as interrupted", t.attrs("state", string(e.State))...)
	}
}
