package alerts

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/forlock/fleet/controlplane/internal/jobs"
	"github.com/forlock/fleet/controlplane/internal/newest"
	"github.com/forlock/fleet/controlplane/internal/registry"
	"github.com/forlock/fleet/controlplane/internal/store"
	"github.com/forlock/fleet/internal/labels"
	"github.com/forlock/fleet/internal/protocol"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// Defaults of Config.
const (
	DefaultJobAlertDuration = time.Hour
	DefaultMaxFiring        = 50000
	// maxOutcomes bounds the job outcomes queued between two evaluations.
	maxOutcomes = 10000
	// maxUnsent bounds the transitions kept while the sink refuses them.
	maxUnsent = 10000
)

// Fleet is the registry's live view.
type Fleet interface {
	Samples() []registry.Sample
}

// Store is what the evaluator reads and writes: the backup and WAL
// catalogs, the data disk's state and its own bucket.
type Store interface {
	newest.Catalog
	WalNewestEnds() (map[string]time.Time, error)
	Disk() store.DiskStatus
	SaveAlerts(put map[string][]byte, del []string, transitions [][]byte) ([]uint64, error)
	Alerts() (map[string][]byte, error)
	AlertTransitions() ([]store.AlertTransition, error)
	DeleteAlertTransitions(ids []uint64) error
}

// Config configures an Evaluator.
type Config struct {
	Fleet Fleet
	Store Store
	// Sink receives transitions and the firing set; nil: no delivery.
	Sink Sink
	Log  *slog.Logger
	// Interval is the time between two evaluations (the heartbeat
	// interval by default, set by the caller).
	Interval time.Duration
	// Warmup is how long after start state alerts are not resolved, while
	// agents reconnect: 2 × Interval if zero.
	Warmup time.Duration
	// Thresholds apply to nodes no override selects; zero: Defaults.
	Thresholds Thresholds
	Overrides  []Override
	// JobAlertDuration is how long ForlockJobFailed fires; 1h if zero.
	JobAlertDuration time.Duration
	// BackupSelectors are the backup schedules' selectors: a node one
	// matches must have a backup (ForlockBackupTooOld) even before its
	// first one.
	BackupSelectors []labels.Selector
	// Audit, if set, returns the last periodic verification of the audit
	// log's chain: checked false before the first.
	Audit func() (checked bool, problem string)
	// MaxFiring caps the firing set; DefaultMaxFiring if zero.
	MaxFiring int
	// Now is the clock; time.Now if nil.
	Now func() time.Time
}

// Evaluator evaluates the conditions and keeps the firing set. Create it
// with New, run it with Run.
type Evaluator struct {
	cfg   Config
	start time.Time

	mu      sync.Mutex // guards firing for readers (List, Counts)
	firing  map[string]*Alert
	pending map[string]time.Time // state conditions holding, not yet for their "for"
	unsaved map[string]*Alert    // changes not yet in the store: nil removes
	capped  int                  // alerts not raised this evaluation: the set was full
	// Transitions on their way to the sink: not stored yet (unstored),
	// stored and not taken by the sink (unsent), taken and their records
	// not deleted yet (taken). Only the evaluation goroutine uses them.
	unstored []Transition
	unsent   []queued
	taken    []uint64
	backups  newest.Backups

	outMu    sync.Mutex
	outcomes []jobs.Outcome
	dropped  int
}

// New loads the firing set from the store.
func New(cfg Config) (*Evaluator, error) {
	if cfg.Fleet == nil || cfg.Store == nil || cfg.Log == nil || cfg.Interval <= 0 {
		return nil, errors.New("alerts: fleet, store, log and interval are required")
	}
	if cfg.Thresholds == (Thresholds{}) {
		cfg.Thresholds = Defaults
	}
	if err := cfg.Thresholds.check(); err != nil {
		return nil, fmt.Errorf("alerts: thresholds: %w", err)
	}
	if cfg.Warmup == 0 {
		cfg.Warmup = 2 * cfg.Interval
	}
	if cfg.JobAlertDuration == 0 {
		cfg.JobAlertDuration = DefaultJobAlertDuration
	}
	if cfg.MaxFiring == 0 {
		cfg.MaxFiring = DefaultMaxFiring
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	e := &Evaluator{cfg: cfg, start: cfg.Now(), firing: map[string]*Alert{}, pending: map[string]time.Time{}, unsaved: map[string]*Alert{}}
	stored, err := cfg.Store.Alerts()
	if err != nil {
		return nil, fmt.Errorf("load the firing alerts: %w", err)
	}
	if err := e.load(stored); err != nil {
		return nil, err
	}
	pending, err := cfg.Store.AlertTransitions()
	if err != nil {
		return nil, fmt.Errorf("load the alert notifications not yet handed on: %w", err)
	}
	if err := e.loadUnsent(pending); err != nil {
		return nil, err
	}
	return e, nil
}

// Run evaluates every Interval until ctx ends.
func (e *Evaluator) Run(ctx context.Context) error {
	t := time.NewTicker(e.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			e.Evaluate(ctx)
		}
	}
}

// JobOutcome queues a job's outcome for the next evaluation (the job
// engine calls it with its lock held: no work here).
func (e *Evaluator) JobOutcome(o jobs.Outcome) {
	e.outMu.Lock()
	defer e.outMu.Unlock()
	if len(e.outcomes) >= maxOutcomes {
		e.dropped++
		return
	}
	e.outcomes = append(e.outcomes, o)
}

// Evaluate runs one evaluation: conditions, transitions, store, sink.
func (e *Evaluator) Evaluate(ctx context.Context) {
	now := e.cfg.Now()
	samples := e.cfg.Fleet.Samples()
	want := e.stateConditions(samples, now)

	e.outMu.Lock()
	outcomes, dropped := e.outcomes, e.dropped
	e.outcomes, e.dropped = nil, 0
	e.outMu.Unlock()
	if dropped > 0 {
		e.cfg.Log.Warn("alerts: job outcomes dropped between two evaluations; their alerts are missing", "dropped", dropped, "max", maxOutcomes)
	}

	e.mu.Lock()
	var ts []Transition
	for _, o := range outcomes {
		ts = e.applyOutcome(ts, o, now)
	}
	ts = e.reconcile(ts, want, samples, now)
	firing := e.list(nil)
	capped := e.capped
	e.capped = 0
	e.mu.Unlock()
	if capped > 0 {
		e.cfg.Log.Warn("alerts: firing set full; alerts not raised", "not_raised", capped, "max", e.cfg.MaxFiring)
	}

	e.deliver(ctx, ts)
	if e.cfg.Sink != nil {
		e.cfg.Sink.Firing(firing)
	}
}

// stateConditions computes every state condition that holds now, by
// fingerprint. A failed catalog read leaves its conditions out (logged):
// they are then neither fired nor resolved (see keep in reconcile).
func (e *Evaluator) stateConditions(samples []registry.Sample, now time.Time) map[string]Alert {
	want := map[string]Alert{}
	add := func(as []Alert) {
		for _, a := range as {
			want[a.Fingerprint] = a
		}
	}
	backupsOK := true
	if err := e.backups.Update(e.cfg.Store, now); err != nil {
		e.cfg.Log.Warn("alerts: reading the backup catalog failed; backup age alerts wait", "err", err)
		backupsOK = false
	}
	walEnds, err := e.cfg.Store.WalNewestEnds()
	if err != nil {
		e.cfg.Log.Warn("alerts: reading the WAL catalog failed; WAL alerts wait", "err", err)
	}
	nodes := e.backups.Nodes()
	for _, s := range samples {
		t := thresholdsFor(e.cfg.Thresholds, e.cfg.Overrides, s.Labels)
		add(nodeConditions(s, t, now))
		if !backupsOK {
			continue
		}
		// The database is what a backup is for: Redis backups every 15
		// minutes must not hide a stale PostgreSQL one (as in the rules
		// file, which watches kind="postgres").
		var last time.Time
		if n := nodes[s.ID]; n != nil {
			last = n.Last[forlockv1.ArtifactKind_ARTIFACT_KIND_POSTGRES]
		}
		// A scheduled node with no backup yet is only late once the
		// control plane has run longer than the allowed age.
		scheduled := now.Sub(e.start) > t.BackupMaxAge && e.scheduled(s.Labels)
		add(backupConditions(s, t, now, scheduled, last, walEnds[s.ID]))
	}
	if d := e.cfg.Store.Disk(); d.Full {
		add([]Alert{newAlert(ControlPlaneDiskFull, Critical, "", "", nil,
			fmt.Sprintf("the control plane's data disk (%s) is full since %s: writes are refused", d.Dir, d.Since.UTC().Format(time.RFC3339)))})
	}
	if e.cfg.Audit != nil {
		if checked, problem := e.cfg.Audit(); checked && problem != "" {
			add([]Alert{newAlert(AuditChainBroken, Critical, "", "", nil, "the audit log's chain does not verify: "+problem)})
		}
	}
	return want
}

func (e *Evaluator) scheduled(nodeLabels map[string]string) bool {
	for _, sel := range e.cfg.BackupSelectors {
		if sel.Matches(nodeLabels) {
			return true
		}
	}
	return false
}

// eventAlert reports alerts that are latched by job outcomes rather than
// computed at each evaluation.
func eventAlert(name string) bool {
	return name == JobFailed || name == BackupFailed || name == RestoreDrillFailed
}

// fire adds an alert to the firing set, unless the set is full.
// Callers hold e.mu.
func (e *Evaluator) fire(ts []Transition, a Alert, since, now time.Time) []Transition {
	if _, ok := e.firing[a.Fingerprint]; ok {
		return ts
	}
	if len(e.firing) >= e.cfg.MaxFiring {
		e.capped++ // logged once per evaluation
		return ts
	}
	a.Since = since
	e.firing[a.Fingerprint] = &a
	e.unsaved[a.Fingerprint] = &a
	return append(ts, Transition{Alert: a, At: now})
}

// resolve removes an alert from the firing set. Callers hold e.mu.
func (e *Evaluator) resolve(ts []Transition, fp string, now time.Time) []Transition {
	a, ok := e.firing[fp]
	if !ok {
		return ts
	}
	delete(e.firing, fp)
	e.unsaved[fp] = nil
	return append(ts, Transition{Alert: *a, Resolved: true, At: now})
}

// reconcile fires the state conditions that held long enough and resolves
// the state alerts that no longer hold. Callers hold e.mu.
func (e *Evaluator) reconcile(ts []Transition, want map[string]Alert, samples []registry.Sample, now time.Time) []Transition {
	warm := now.Sub(e.start) < e.cfg.Warmup
	for fp, a := range want {
		if cur, ok := e.firing[fp]; ok {
			// Numbers in a summary change at every evaluation: they are
			// kept in memory, and only a new severity is written.
			if cur.Summary != a.Summary || cur.Severity != a.Severity {
				a.Since = cur.Since
				if cur.Severity != a.Severity {
					e.unsaved[fp] = &a
				}
				e.firing[fp] = &a
			}
			continue
		}
		first, ok := e.pending[fp]
		if !ok {
			first = now
			e.pending[fp] = now
		}
		if now.Sub(first) >= forDurations[a.Name] {
			delete(e.pending, fp)
			ts = e.fire(ts, a, first, now)
		}
	}
	for fp := range e.pending {
		if _, ok := want[fp]; !ok {
			delete(e.pending, fp)
		}
	}
	known := make(map[string]bool, len(samples))
	for _, s := range samples {
		known[s.ID] = true
	}
	for fp, a := range e.firing {
		switch {
		case a.Name == JobFailed:
			if now.Sub(a.Since) >= e.cfg.JobAlertDuration {
				ts = e.resolve(ts, fp, now)
			}
		case eventAlert(a.Name):
			if !warm && !known[a.NodeID] {
				ts = e.resolve(ts, fp, now) // the node was removed
			}
		case warm:
			// Right after a start no node has reported yet: what is
			// not seen is not known to have cleared.
		default:
			if _, ok := want[fp]; !ok {
				ts = e.resolve(ts, fp, now)
			}
		}
	}
	return ts
}

// applyOutcome fires and resolves the event alerts of an ended job, in the
// order jobs ended: a node's newest backup or drill decides. Callers hold
// e.mu.
func (e *Evaluator) applyOutcome(ts []Transition, o jobs.Outcome, now time.Time) []Transition {
	at := o.At
	if at.IsZero() || at.After(now) {
		at = now
	}
	kind := clean(o.Kind)
	if o.State == forlockv1.JobState_JOB_STATE_FAILED || o.State == forlockv1.JobState_JOB_STATE_PARTIALLY_FAILED {
		word := "failed"
		if o.State == forlockv1.JobState_JOB_STATE_PARTIALLY_FAILED {
			word = "partially failed"
		}
		a := newAlert(JobFailed, Warning, "", "", map[string]string{"job": clean(o.JobID), "kind": kind},
			fmt.Sprintf("job %s (%s) %s: %d of %d tasks failed", clean(o.JobID), kind, word, o.Failed, len(o.Tasks)))
		ts = e.fire(ts, a, at, now)
	}
	var name, what string
	switch protocol.Kind(o.Kind) {
	case protocol.KindBackup:
		name, what = BackupFailed, "backup"
	case protocol.KindVerifyBackup:
		name, what = RestoreDrillFailed, "restore drill"
	default:
		return ts
	}
	for _, t := range o.Tasks {
		a := newAlert(name, Critical, t.NodeID, t.NodeName, nil,
			fmt.Sprintf("node %s: the newest %s failed (job %s)", clean(t.NodeName), what, clean(o.JobID)))
		switch {
		case t.Failed:
			ts = e.fire(ts, a, at, now)
		case t.State == forlockv1.TaskState_TASK_STATE_SUCCEEDED:
			ts = e.resolve(ts, a.Fingerprint, now)
		}
	}
	return ts
}
