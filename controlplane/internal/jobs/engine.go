// Package jobs is the control plane's job engine. A job has one task per
// target node; the engine starts tasks under the job's rollout rules (max
// parallel, canaries, stop after failures, deadline, offline policy), sends
// them to agents over their control streams, takes their updates, and records
// every transition as an event.
//
// All job state lives in memory under one mutex and is written to bbolt by a
// single writer goroutine that group-commits: each commit stores every job
// changed since the last one, once, with its new events. A job is durable
// before SubmitJob returns and before it is dispatched; a terminal task
// result is durable before the agent gets its acknowledgement. Anything lost
// in a crash between commits is recovered from the agents: they keep
// unacknowledged results in their journals and never run a task ID twice, so
// re-sending an assignment is always safe.
package jobs

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/forlock/fleet/controlplane/internal/registry"
	"github.com/forlock/fleet/controlplane/internal/store"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// TasksCapability is the agent capability needed to receive tasks.
const TasksCapability = "tasks.v1"

// tickInterval is how often deadlines are checked.
const tickInterval = 250 * time.Millisecond

// KeyWrapper wraps backup data keys with the control plane's
// key-encryption key (a local key file, or Vault Transit).
type KeyWrapper interface {
	KeyID() string
	Wrap(ctx context.Context, plain []byte) ([]byte, error)
	Unwrap(ctx context.Context, keyID string, wrapped []byte) ([]byte, error)
}

// Config configures an Engine.
type Config struct {
	Store    *store.Store
	Registry *registry.Registry
	Logger   *slog.Logger
	// Keys wraps the data keys of backups; without it backup and restore
	// jobs are refused.
	Keys KeyWrapper
	// Certs makes the certificates of cert_rotate tasks; without it they
	// are refused.
	Certs CertSource
}

// Engine runs jobs. Create it with New, start it with Run.
type Engine struct {
	store *store.Store
	reg   *registry.Registry
	log   *slog.Logger
	kek   KeyWrapper
	// certSrc makes certificates; nil without Vault.
	certSrc CertSource

	mu     sync.Mutex
	jobs   map[string]*job // jobs that have not ended
	keys   map[string]string
	dirty  map[string]*job
	events []store.JobEventRecord
	rps    []*forlockv1.RestorePoint
	// pendingRels and pendingCerts are node facts for the next commit.
	pendingRels  []store.NodeRelease
	pendingCerts []store.NodeCertificate
	// preparing holds the tasks whose material is being made outside the
	// lock; prep counts those goroutines.
	preparing map[string]struct{}
	prep      sync.WaitGroup
	after     []func() // run once the pending writes are committed (a failed commit is retried until it succeeds)
	wake      chan struct{}
}

// job is an active job. pb is the authoritative copy; events is its whole
// history; notify is closed and replaced whenever an event is appended.
type job struct {
	pb      *forlockv1.Job
	events  []*forlockv1.JobEvent
	notify  chan struct{}
	durable bool
	tasks   map[string]*forlockv1.Task
}

// New loads the jobs that have not ended.
func New(cfg Config) (*Engine, error) {
	st := cfg.Store
	e := &Engine{
		store: st, reg: cfg.Registry, log: cfg.Logger, kek: cfg.Keys, certSrc: cfg.Certs,
		jobs: map[string]*job{}, keys: map[string]string{}, dirty: map[string]*job{}, preparing: map[string]struct{}{},
		wake: make(chan struct{}, 1),
	}
	active, err := st.ActiveJobs()
	if err != nil {
		return nil, err
	}
	for _, pb := range active {
		evs, err := st.JobEvents(pb.GetId())
		if err != nil {
			return nil, err
		}
		j := newJob(pb)
		j.events, j.durable = evs, true
		e.jobs[pb.GetId()] = j
	}
	return e, nil
}

func newJob(pb *forlockv1.Job) *job {
	j := &job{pb: pb, notify: make(chan struct{}), tasks: make(map[string]*forlockv1.Task, len(pb.GetTasks()))}
	for _, t := range pb.GetTasks() {
		j.tasks[t.GetId()] = t
	}
	return j
}

// Run writes state changes and checks deadlines until ctx ends; it then
// commits what is pending and returns.
func (e *Engine) Run(ctx context.Context) error {
	tick := time.NewTicker(tickInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			e.prep.Wait() // material goroutines end within materialTimeout
			return e.commit()
		case <-e.wake:
			if err := e.commit(); err != nil {
				e.log.Error("saving jobs failed; will retry", "err", err)
				time.Sleep(100 * time.Millisecond)
				e.kick()
			}
		case <-tick.C:
			e.mu.Lock()
			for _, j := range e.jobs {
				e.schedule(j)
			}
			e.mu.Unlock()
		}
	}
}

// kick asks the writer for a commit.
func (e *Engine) kick() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// markDirty queues the job for the next commit. Callers hold e.mu.
func (e *Engine) markDirty(j *job) {
	e.dirty[j.pb.GetId()] = j
	e.kick()
}

// afterCommit runs fn once everything queued so far is committed. Callers
// hold e.mu.
func (e *Engine) afterCommit(fn func()) {
	e.after = append(e.after, fn)
	e.kick()
}

// commit is the group commit: one transaction for every job changed and
// every event appended since the last one.
func (e *Engine) commit() error {
	e.mu.Lock()
	if len(e.dirty) == 0 && len(e.events) == 0 && len(e.after) == 0 && len(e.rps) == 0 && len(e.pendingRels) == 0 && len(e.pendingCerts) == 0 {
		e.mu.Unlock()
		return nil
	}
	w := store.JobWrite{Events: e.events, RestorePoints: e.rps, Releases: e.pendingRels, Certificates: e.pendingCerts}
	dirty := e.dirty
	for _, j := range dirty {
		w.Jobs = append(w.Jobs, proto.CloneOf(j.pb))
	}
	after := e.after
	e.dirty, e.events, e.after, e.rps, e.pendingRels, e.pendingCerts = map[string]*job{}, nil, nil, nil, nil, nil
	e.mu.Unlock()

	if err := e.store.SaveJobs(w); err != nil {
		// Put the work back so the next commit retries it.
		e.mu.Lock()
		for id, j := range dirty {
			if _, ok := e.dirty[id]; !ok {
				e.dirty[id] = j
			}
		}
		e.events = append(w.Events, e.events...)
		e.rps = append(w.RestorePoints, e.rps...)
		e.pendingRels = append(w.Releases, e.pendingRels...)
		e.pendingCerts = append(w.Certificates, e.pendingCerts...)
		e.after = append(after, e.after...)
		e.mu.Unlock()
		return err
	}
	for _, fn := range after {
		fn()
	}
	return nil
}
