// Package jobs is the control plane's job engine. A job has one task per
// target node; the engine starts tasks under the job's rollout rules (max
// parallel, canaries, stop after failures, deadline, offline policy), sends
// them to agents over their control streams, takes their updates, and records
// every transition as an event.
//
// All job state lives in memory under one mutex and is written to bbolt by a
// single writer goroutine that group-commits: each commit stores what
// changed since the last one, once, with the new events. The engine tracks
// what is dirty: a job's own record is written when its own fields change
// (state, end, cancel reason), a task's record when the task changes, so a
// task transition in a job of 10,000 tasks writes one task record, not the
// job (see store.JobWrite). A job is durable before SubmitJob returns and
// before it is dispatched; a terminal task
// result is durable before the agent gets its acknowledgement. Anything lost
// in a crash between commits is recovered from the agents: they keep
// unacknowledged results in their journals and never run a task ID twice, so
// re-sending an assignment is always safe.
//
// A commit can fail. When the data disk is full (store.ErrDiskFull) the
// engine says so and carries on: a job whose submit was in the failed
// commit is dropped from memory and its submitter gets the error (never an
// acknowledgement); everything else (task results, whose acknowledgements
// wait, cancellations, catalog entries) stays queued and is retried every
// commitRetry, without new progress events piling onto the batch meanwhile;
// new submits fail fast on the store's check. Saving resumes by itself on the
// first retry after space returns. Any other I/O error of a commit
// (store.ErrWriteFailed, e.g. a failed fsync) stops the engine and with it
// the control plane: after it the file may not hold what memory says, and a
// restart recovers from what is on disk and from the agents' journals.
package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"golang.org/x/time/rate"
	"google.golang.org/protobuf/proto"

	"github.com/forlock/fleet/controlplane/internal/audit"
	"github.com/forlock/fleet/controlplane/internal/registry"
	"github.com/forlock/fleet/controlplane/internal/store"
	"github.com/forlock/fleet/internal/protocol"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// tickInterval is how often deadlines are checked.
const tickInterval = 250 * time.Millisecond

// commitRetry is the pause after a failed commit: short enough that saving
// resumes within a second of space returning, long enough that a full disk
// costs nothing.
const commitRetry = 500 * time.Millisecond

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
	// Limits bound the job history agents' progress reports make.
	Limits Limits
	// Observer, if set, is told of every task and job that ends.
	Observer Observer
	// Outcomes, if set, is told how every job ended, task by task.
	Outcomes Outcomes
}

// Observer is told of every task and job that reaches a final state (the
// metrics). It is called with the engine's lock held, so it must be quick.
type Observer interface {
	// TaskEnded gets the job's kind, the task's state (its enum name) and
	// how long it ran (0 if it never started).
	TaskEnded(kind, state string, ran time.Duration)
	// JobEnded gets the job's kind and final state (its enum name).
	JobEnded(kind, state string)
}

// Engine runs jobs. Create it with New, start it with Run.
type Engine struct {
	store *store.Store
	reg   *registry.Registry
	log   *slog.Logger
	kek   KeyWrapper
	// certSrc makes certificates; nil without Vault.
	certSrc  CertSource
	limits   Limits
	obs      Observer       // nil: none
	outcomes Outcomes       // nil: none
	dropLog  rate.Sometimes // at most one log line a second for ignored updates

	mu     sync.Mutex
	jobs   map[string]*job // jobs that have not ended
	keys   map[string]string
	dirty  map[string]*job
	events []store.JobEventRecord
	rps    []*forlockv1.RestorePoint
	// pendingRels and pendingCerts are node facts for the next commit.
	pendingRels  []store.NodeRelease
	pendingCerts []store.NodeCertificate
	// walTrims are WAL catalog trims of succeeded WAL deletions.
	walTrims []store.WalTrim
	// preparing holds the tasks whose material is being made outside the
	// lock; prep counts those goroutines.
	preparing map[string]struct{}
	prep      sync.WaitGroup
	after     []func() // run once the pending writes are committed (a failed commit is retried until it succeeds)
	wake      chan struct{}
	// late is the late-result index (see late.go); lateAdd and lateDone
	// are its changes for the next commit; reopened holds ended jobs
	// loaded for a late result until it is committed.
	late     map[string]string
	lateAdd  map[string]string
	lateDone []string
	reopened map[string]*job
	// diskFull is set while commits fail for lack of space.
	diskFull bool
}

// job is an active job. pb is the authoritative copy; events is its whole
// history; notify is closed and replaced whenever an event is appended.
type job struct {
	pb      *forlockv1.Job
	events  []*forlockv1.JobEvent
	notify  chan struct{}
	durable bool
	tasks   map[string]*forlockv1.Task
	// pos is each task's position in pb.Tasks, as the store keys it.
	pos map[string]int
	// What the next commit writes of a durable job: its own record
	// (fields other than the tasks) if recordDirty, and the tasks at the
	// positions in dirtyTasks. A job that is not durable yet is written
	// whole.
	recordDirty bool
	dirtyTasks  map[int]struct{}
	// committed receives the outcome of the commit that holds the job's
	// submit: nil, or why it could not be saved.
	committed chan error
	// audit are the submit's audit records, written in the commit that
	// makes the job durable.
	audit []audit.Record
	// progressAt is when each task's last progress event was stored;
	// sampled counts progress reports past the job's event cap.
	progressAt map[string]time.Time
	sampled    int
}

// kind is the job's kind, as stored.
func (j *job) kind() protocol.Kind { return protocol.Kind(j.pb.GetKind()) }

// New loads the jobs that have not ended.
func New(cfg Config) (*Engine, error) {
	st := cfg.Store
	e := &Engine{
		store: st, reg: cfg.Registry, log: cfg.Logger, kek: cfg.Keys, certSrc: cfg.Certs,
		limits: cfg.Limits.WithDefaults(), obs: cfg.Observer, outcomes: cfg.Outcomes, dropLog: rate.Sometimes{Interval: time.Second},
		jobs: map[string]*job{}, keys: map[string]string{}, dirty: map[string]*job{}, preparing: map[string]struct{}{},
		wake: make(chan struct{}, 1), lateAdd: map[string]string{}, reopened: map[string]*job{},
	}
	late, err := st.LateTasks()
	if err != nil {
		return nil, err
	}
	e.late = late
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
	j := &job{pb: pb, notify: make(chan struct{}), tasks: make(map[string]*forlockv1.Task, len(pb.GetTasks())),
		pos: make(map[string]int, len(pb.GetTasks())), dirtyTasks: map[int]struct{}{}, progressAt: map[string]time.Time{}}
	for i, t := range pb.GetTasks() {
		j.tasks[t.GetId()] = t
		j.pos[t.GetId()] = i
	}
	return j
}

// Run writes state changes and checks deadlines until ctx ends; it then
// commits what is pending and returns. It returns an error only when a
// commit failed in a way that is not a lack of space (store.ErrWriteFailed).
func (e *Engine) Run(ctx context.Context) error {
	tick := time.NewTicker(tickInterval)
	defer tick.Stop()
	var retry <-chan time.Time // set while waiting to retry a failed commit
	failing := false
	for {
		select {
		case <-ctx.Done():
			e.prep.Wait() // material goroutines end within materialTimeout
			err := e.commit()
			if errors.Is(err, store.ErrDiskFull) {
				// Nothing acknowledged is lost: unsaved results stay in the
				// agents' journals, unsaved submits were never answered.
				e.log.Warn("stopping with unsaved job changes: the data disk is full", "err", err)
				return nil
			}
			return err
		case <-e.wake:
			if retry != nil {
				continue // the retry timer commits everything queued meanwhile
			}
			err := e.commit()
			if err == nil {
				if failing {
					e.log.Info("saving jobs resumed")
					failing = false
				}
				continue
			}
			if errors.Is(err, store.ErrWriteFailed) {
				e.log.Error("saving jobs failed: the database may no longer match memory; stopping the control plane (restart it: state is recovered from disk and from the agents)", "err", err)
				return fmt.Errorf("job engine: %w", err)
			}
			if !failing {
				e.log.Error("saving jobs failed; new submits are refused, results stay pending, retrying", "err", err, "retry_every", commitRetry)
				failing = true
			}
			retry = time.After(commitRetry)
		case <-retry:
			retry = nil
			e.kick()
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

// markDirty queues the job for the next commit: its own record if
// record, and task t unless it is nil. Callers hold e.mu.
func (e *Engine) markDirty(j *job, record bool, t *forlockv1.Task) {
	j.recordDirty = j.recordDirty || record
	if t != nil {
		j.dirtyTasks[j.pos[t.GetId()]] = struct{}{}
	}
	e.dirty[j.pb.GetId()] = j
	e.kick()
}

// changes returns what the next commit writes of a dirty job, and resets
// its dirty marks: a job that is not durable yet whole; else its record if
// it changed (without its tasks) and each changed task. What it returns
// are copies: the commit encodes them outside e.mu. Callers hold e.mu.
func (j *job) changes() (*forlockv1.Job, []store.TaskWrite) {
	defer func() {
		j.recordDirty = false
		clear(j.dirtyTasks)
	}()
	if !j.durable {
		return proto.CloneOf(j.pb), nil
	}
	var rec *forlockv1.Job
	if j.recordDirty {
		tasks := j.pb.Tasks
		j.pb.Tasks = nil
		rec = proto.CloneOf(j.pb)
		j.pb.Tasks = tasks
	}
	id := j.pb.GetId()
	tasks := make([]store.TaskWrite, 0, len(j.dirtyTasks))
	for _, pos := range slices.Sorted(maps.Keys(j.dirtyTasks)) {
		tasks = append(tasks, store.TaskWrite{JobID: id, Position: pos, Task: proto.CloneOf(j.pb.GetTasks()[pos])})
	}
	return rec, tasks
}

// afterCommit runs fn once everything queued so far is committed. Callers
// hold e.mu.
func (e *Engine) afterCommit(fn func()) {
	e.after = append(e.after, fn)
	e.kick()
}

// commit is the group commit: one transaction for every job record and
// task changed and every event appended since the last one.
func (e *Engine) commit() error {
	e.mu.Lock()
	if len(e.dirty) == 0 && len(e.events) == 0 && len(e.after) == 0 && len(e.rps) == 0 && len(e.pendingRels) == 0 &&
		len(e.pendingCerts) == 0 && len(e.lateAdd) == 0 && len(e.lateDone) == 0 {
		e.mu.Unlock()
		return nil
	}
	w := store.JobWrite{Events: e.events, RestorePoints: e.rps, Releases: e.pendingRels, Certificates: e.pendingCerts,
		LateTasks: e.lateAdd, LateDone: e.lateDone, WalTrims: e.walTrims}
	e.walTrims = nil
	dirty := e.dirty
	for _, j := range dirty {
		if !j.durable {
			w.Audit = append(w.Audit, j.audit...)
		}
		rec, tasks := j.changes()
		if rec != nil {
			w.Jobs = append(w.Jobs, rec)
		}
		w.Tasks = append(w.Tasks, tasks...)
	}
	after := e.after
	e.dirty, e.events, e.after, e.rps, e.pendingRels, e.pendingCerts = map[string]*job{}, nil, nil, nil, nil, nil
	e.lateAdd, e.lateDone = map[string]string{}, nil
	e.mu.Unlock()

	var err error
	if len(w.Jobs) > 0 || len(w.Tasks) > 0 || len(w.Events) > 0 || len(w.RestorePoints) > 0 || len(w.Releases) > 0 || len(w.Certificates) > 0 ||
		len(w.LateTasks) > 0 || len(w.LateDone) > 0 || len(w.WalTrims) > 0 {
		err = e.store.SaveJobs(w)
	} // else only waiters: what they wait for was in earlier commits, all done
	e.mu.Lock()
	if err != nil {
		e.putBack(w, dirty, after, err)
		e.mu.Unlock()
		return err
	}
	e.diskFull = false
	for _, j := range dirty {
		if !j.durable {
			// Dispatch starts only once the job is on disk, whether or not
			// the submitter is still waiting.
			j.durable = true
			e.schedule(j)
			if j.committed != nil {
				j.committed <- nil
			}
		}
	}
	e.mu.Unlock()
	for _, fn := range after {
		fn()
	}
	return nil
}

// putBack returns the work of a failed commit to the queue, for the retry,
// except the jobs it would have saved for the first time: those leave
// memory with their events and their submitters get err. Callers hold e.mu.
func (e *Engine) putBack(w store.JobWrite, dirty map[string]*job, after []func(), err error) {
	e.diskFull = errors.Is(err, store.ErrDiskFull)
	dropped := map[string]bool{}
	for id, j := range dirty {
		if !j.durable {
			dropped[id] = true
			if e.jobs[id] == j {
				delete(e.jobs, id)
			}
			if k := j.pb.GetIdempotencyKey(); k != "" && e.keys[k] == id {
				delete(e.keys, k)
			}
			delete(e.dirty, id)
			if j.committed != nil {
				j.committed <- err
			}
			continue
		}
		if _, ok := e.dirty[id]; !ok {
			e.dirty[id] = j
		}
	}
	// A durable job's record and tasks are written again on the retry
	// (with whatever changed meanwhile: they are copied then).
	for _, rec := range w.Jobs {
		if j := dirty[rec.GetId()]; !dropped[rec.GetId()] && j != nil {
			j.recordDirty = true
		}
	}
	for _, tw := range w.Tasks {
		if j := dirty[tw.JobID]; !dropped[tw.JobID] && j != nil {
			j.dirtyTasks[tw.Position] = struct{}{}
		}
	}
	keep := func(evs []store.JobEventRecord) []store.JobEventRecord {
		out := evs[:0:0]
		for _, ev := range evs {
			if !dropped[ev.JobID] {
				out = append(out, ev)
			}
		}
		return out
	}
	e.events = append(keep(w.Events), keep(e.events)...)
	e.rps = append(w.RestorePoints, e.rps...)
	e.pendingRels = append(w.Releases, e.pendingRels...)
	e.pendingCerts = append(w.Certificates, e.pendingCerts...)
	e.walTrims = append(w.WalTrims, e.walTrims...)
	for task, node := range w.LateTasks {
		if _, open := e.late[task]; open {
			e.lateAdd[task] = node
		}
	}
	e.lateDone = append(w.LateDone, e.lateDone...)
	e.after = append(after, e.after...)
}
