package alerts

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/forlock/fleet/controlplane/internal/jobs"
	"github.com/forlock/fleet/controlplane/internal/registry"
	"github.com/forlock/fleet/controlplane/internal/store"
	"github.com/forlock/fleet/internal/labels"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type fleet struct {
	mu sync.Mutex
	s  []registry.Sample
}

func (f *fleet) Samples() []registry.Sample { f.mu.Lock(); defer f.mu.Unlock(); return f.s }
func (f *fleet) set(s ...registry.Sample)   { f.mu.Lock(); defer f.mu.Unlock(); f.s = s }

type sink struct {
	ts     []Transition
	firing []Alert
	fail   error
}

func (s *sink) Notify(_ context.Context, ts []Transition) error {
	if s.fail != nil {
		return s.fail
	}
	s.ts = append(s.ts, ts...)
	return nil
}
func (s *sink) Firing(a []Alert) { s.firing = a }

// take returns the transitions received since the last take, as
// "firing Name" / "resolved Name" lines.
func (s *sink) take() []string {
	var out []string
	for _, t := range s.ts {
		w := "firing"
		if t.Resolved {
			w = "resolved"
		}
		out = append(out, w+" "+t.Alert.Name)
	}
	s.ts = nil
	return out
}

// fullDisk reports the data disk full when full is set.
type fullDisk struct {
	*store.Store
	full bool
}

func (d *fullDisk) Disk() store.DiskStatus {
	s := d.Store.Disk()
	s.Full, s.Since = d.full, t0
	return s
}

type rig struct {
	t     *testing.T
	path  string
	st    *store.Store
	disk  *fullDisk
	fleet *fleet
	sink  *sink
	now   time.Time
	e     *Evaluator
	cfg   Config
}

func newRig(t *testing.T) *rig {
	t.Helper()
	r := &rig{t: t, path: filepath.Join(t.TempDir(), "fleet.db"), fleet: &fleet{}, sink: &sink{}, now: t0}
	r.open()
	t.Cleanup(func() { _ = r.st.Close() })
	return r
}

// open opens the store and starts a new evaluator on it, as a restart does.
func (r *rig) open() {
	r.t.Helper()
	st, err := store.Open(r.path)
	require.NoError(r.t, err)
	r.st, r.disk = st, &fullDisk{Store: st}
	r.cfg = Config{Fleet: r.fleet, Store: r.disk, Sink: r.sink, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Interval: 10 * time.Second, Now: func() time.Time { return r.now }}
	r.e, err = New(r.cfg)
	require.NoError(r.t, err)
}

func (r *rig) restart() {
	r.t.Helper()
	require.NoError(r.t, r.st.Close())
	r.open()
}

// step advances the clock and evaluates.
func (r *rig) step(d time.Duration) []string {
	r.now = r.now.Add(d)
	r.e.Evaluate(context.Background())
	return r.sink.take()
}

func redis(status forlockv1.CheckStatus) registry.Sample { return sample(check("redis", status)) }

const crit = forlockv1.CheckStatus_CHECK_STATUS_CRITICAL

func TestCheckCriticalFiresAtOnceAndResolves(t *testing.T) {
	r := newRig(t)
	r.fleet.set(redis(okStatus))
	require.Empty(t, r.step(0))
	r.fleet.set(redis(crit))
	require.Equal(t, []string{"firing ForlockCheckCritical"}, r.step(10*time.Second))
	require.Len(t, r.sink.firing, 1)
	a := r.sink.firing[0]
	require.Equal(t, "web-1", a.Node)
	require.Equal(t, map[string]string{"check": "redis"}, a.Labels)
	require.Equal(t, r.now, a.Since)
	require.Equal(t, "https://github.com/forlock/fleet/blob/main/docs/operations.md#alert-forlockcheckcritical", a.RunbookURL)
	require.Empty(t, r.step(10*time.Second), "still firing: no new transition")
	r.fleet.set(redis(okStatus))
	require.Equal(t, []string{"resolved ForlockCheckCritical"}, r.step(10*time.Second))
	require.Empty(t, r.sink.firing)
	require.Empty(t, r.e.Firing(nil))
}

func TestForDurationHoldsBackFlappingNumbers(t *testing.T) {
	r := newRig(t)
	hot := sample(check("cpu", okStatus, meas("used_ratio", 0.95, "")))
	r.fleet.set(hot)
	require.Empty(t, r.step(0))
	require.Empty(t, r.step(time.Minute))
	r.fleet.set(sample(check("cpu", okStatus, meas("used_ratio", 0.5, "")))) // a dip restarts the wait
	require.Empty(t, r.step(10*time.Second))
	r.fleet.set(hot)
	require.Empty(t, r.step(10*time.Second))
	first := r.now
	require.Empty(t, r.step(299*time.Second))
	require.Equal(t, []string{"firing ForlockCPUHigh"}, r.step(time.Second))
	require.Equal(t, first, r.e.Firing(nil)[0].Since, "since is when the condition began")
}

func TestRestartKeepsTheFiringSet(t *testing.T) {
	r := newRig(t)
	r.fleet.set(redis(crit))
	require.Equal(t, []string{"firing ForlockCheckCritical"}, r.step(0))
	since := r.e.Firing(nil)[0].Since

	// Restart with the condition still holding: same since, no transition,
	// even before the node reported again.
	r.restart()
	r.fleet.set(registry.Sample{ID: "n1", Name: "web-1", State: store.StateOnline}) // no heartbeat yet
	require.Empty(t, r.step(time.Second), "warm-up: not reported yet is not cleared")
	require.Equal(t, since, r.e.Firing(nil)[0].Since)
	r.fleet.set(redis(crit))
	require.Empty(t, r.step(5*time.Second))
	require.Empty(t, r.step(30*time.Second), "past the warm-up, still firing: nothing to send")

	// The condition cleared while the control plane was down: resolved at
	// the first evaluation after the warm-up, once.
	r.restart()
	r.fleet.set(redis(okStatus))
	require.Empty(t, r.step(time.Second))
	require.Equal(t, []string{"resolved ForlockCheckCritical"}, r.step(20*time.Second))
	r.restart()
	require.Empty(t, r.step(time.Minute), "the resolve was stored: not sent again")
	require.Empty(t, r.e.Firing(nil))
}

func TestStoreRefusalHoldsNotifications(t *testing.T) {
	r := newRig(t)
	r.fleet.set(redis(crit))
	require.NoError(t, r.st.Close()) // every write now fails, as with a full disk
	require.Empty(t, r.step(0), "not stored: not sent")
	st, err := store.Open(r.path)
	require.NoError(t, err)
	r.st, r.disk.Store = st, st
	require.Equal(t, []string{"firing ForlockCheckCritical"}, r.step(10*time.Second), "sent once stored")

	r.sink.fail = fmt.Errorf("outbox full")
	r.fleet.set(redis(okStatus))
	require.Empty(t, r.step(10*time.Second))
	r.sink.fail = nil
	require.Equal(t, []string{"resolved ForlockCheckCritical"}, r.step(10*time.Second), "kept until the sink took it")
	require.Empty(t, r.step(10*time.Second), "taken: not sent again")
	pending, err := r.st.AlertTransitions()
	require.NoError(t, err)
	require.Empty(t, pending, "taken transitions are deleted from the store")
}

// A transition the sink refused survives a restart and is handed on once.
func TestUnsentTransitionSurvivesRestart(t *testing.T) {
	r := newRig(t)
	r.fleet.set(redis(crit))
	r.sink.fail = fmt.Errorf("outbox full")
	require.Empty(t, r.step(0))
	pending, err := r.st.AlertTransitions()
	require.NoError(t, err)
	require.Len(t, pending, 1, "stored with the firing set")

	r.restart()
	r.sink.fail = nil
	require.Equal(t, []string{"firing ForlockCheckCritical"}, r.step(time.Second), "handed on after the restart")
	require.Empty(t, r.step(time.Minute))
	r.restart()
	require.Empty(t, r.step(time.Minute), "once")
}

func backupOutcome(id string, taskState forlockv1.TaskState) jobs.Outcome {
	failed := taskState != forlockv1.TaskState_TASK_STATE_SUCCEEDED
	o := jobs.Outcome{JobID: id, Kind: "backup", State: forlockv1.JobState_JOB_STATE_SUCCEEDED, // At zero: now
		Tasks: []jobs.TaskOutcome{{NodeID: "n1", NodeName: "web-1", State: taskState, Failed: failed}}}
	if failed {
		o.State, o.Failed = forlockv1.JobState_JOB_STATE_FAILED, 1
	} else {
		o.Succeeded = 1
	}
	return o
}

func TestBackupFailedUntilALaterBackupSucceeds(t *testing.T) {
	r := newRig(t)
	r.fleet.set(sample())
	r.e.JobOutcome(backupOutcome("j1", forlockv1.TaskState_TASK_STATE_FAILED))
	require.ElementsMatch(t, []string{"firing ForlockJobFailed", "firing ForlockBackupFailed"}, r.step(0))
	var job Alert
	for _, a := range r.e.Firing(nil) {
		if a.Name == JobFailed {
			job = a
		}
	}
	require.Equal(t, map[string]string{"job": "j1", "kind": "backup"}, job.Labels)
	require.Equal(t, "job j1 (backup) failed: 1 of 1 tasks failed", job.Summary)

	// A restart keeps both; nothing observed resolves them during or after
	// the warm-up.
	r.restart()
	require.Empty(t, r.step(time.Minute))
	r.e.JobOutcome(backupOutcome("j2", forlockv1.TaskState_TASK_STATE_FAILED))
	require.Equal(t, []string{"firing ForlockJobFailed"}, r.step(time.Second), "a second failure: the backup alert already fires")
	r.e.JobOutcome(backupOutcome("j3", forlockv1.TaskState_TASK_STATE_SUCCEEDED))
	require.Equal(t, []string{"resolved ForlockBackupFailed"}, r.step(time.Second))
	// The job alerts resolve after job_alert_duration from their since.
	require.Equal(t, []string{"resolved ForlockJobFailed"}, r.step(time.Hour-time.Minute))
	require.Equal(t, []string{"resolved ForlockJobFailed"}, r.step(time.Minute))
}

func TestDrillFailedAndPartialJob(t *testing.T) {
	r := newRig(t)
	r.fleet.set(sample(), registry.Sample{ID: "n2", Name: "web-2", State: store.StateOnline})
	r.e.JobOutcome(jobs.Outcome{JobID: "d1", Kind: "verify_backup", State: forlockv1.JobState_JOB_STATE_PARTIALLY_FAILED, At: t0, Failed: 1, Succeeded: 1,
		Tasks: []jobs.TaskOutcome{
			{NodeID: "n1", NodeName: "web-1", State: forlockv1.TaskState_TASK_STATE_FAILED, Failed: true},
			{NodeID: "n2", NodeName: "web-2", State: forlockv1.TaskState_TASK_STATE_SUCCEEDED}}})
	require.ElementsMatch(t, []string{"firing ForlockJobFailed", "firing ForlockRestoreDrillFailed"}, r.step(0))
	for _, a := range r.e.Firing(nil) {
		if a.Name == RestoreDrillFailed {
			require.Equal(t, "web-1", a.Node)
		} else {
			require.Contains(t, a.Summary, "partially failed: 1 of 2 tasks failed")
		}
	}
	// A cancelled job alerts nothing.
	r.e.JobOutcome(jobs.Outcome{JobID: "d2", Kind: "verify_backup", State: forlockv1.JobState_JOB_STATE_CANCELLED})
	require.Empty(t, r.step(time.Second))
	// The node is removed: its drill alert resolves.
	r.fleet.set(registry.Sample{ID: "n2", Name: "web-2", State: store.StateOnline})
	require.Equal(t, []string{"resolved ForlockRestoreDrillFailed"}, r.step(time.Minute))
}

func TestCatalogAndDiskConditions(t *testing.T) {
	r := newRig(t)
	r.cfg.BackupSelectors = []labels.Selector{mustSelector(t, "backup=yes")}
	var err error
	r.e, err = New(r.cfg)
	require.NoError(t, err)

	old := t0.Add(-27 * time.Hour)
	require.NoError(t, r.st.SaveJobs(store.JobWrite{RestorePoints: []*forlockv1.RestorePoint{{
		Id: fmt.Sprintf("%016x0000", old.UnixNano()), NodeId: "n1", CreatedAt: timestamppb.New(old),
		Artifacts: []*forlockv1.Artifact{{Id: "a1", Kind: forlockv1.ArtifactKind_ARTIFACT_KIND_POSTGRES, SizeBytes: 1,
			State: forlockv1.ArtifactState_ARTIFACT_STATE_AVAILABLE, CreatedAt: timestamppb.New(old)}}}}}))
	walEnd := t0.Add(-6 * time.Minute)
	_, err = r.st.MergeWalRanges(map[string][]*forlockv1.WalRange{"n1": {{NodeId: "n1", Timeline: 1, StartLsn: "0/1000000", EndLsn: "0/3000000",
		StartTime: timestamppb.New(old), EndTime: timestamppb.New(walEnd), Segments: 2, SizeBytes: 32 << 20}}})
	require.NoError(t, err)
	withArchive := sample()
	withArchive.Archive = check("wal_archive", okStatus)
	scheduledNoBackup := registry.Sample{ID: "n3", Name: "web-3", State: store.StateOnline, Labels: map[string]string{"backup": "yes"}}
	r.fleet.set(withArchive, scheduledNoBackup)
	r.disk.full = true
	require.ElementsMatch(t, []string{"firing ForlockBackupTooOld", "firing ForlockControlPlaneDiskFull"}, r.step(0))
	r.disk.full = false
	require.Equal(t, []string{"resolved ForlockControlPlaneDiskFull"}, r.step(time.Minute))
	require.Equal(t, []string{"firing ForlockWALArchiveBehind"}, r.step(time.Minute), "behind for its 2m")
	require.Equal(t, []string{"firing ForlockBackupTooOld"}, r.step(26*time.Hour), "the scheduled node, once the control plane ran longer than backup_max_age")

	// A fresh Redis backup does not resolve n1's: PostgreSQL's is still old.
	fresh := r.now.Add(-time.Minute)
	require.NoError(t, r.st.SaveJobs(store.JobWrite{RestorePoints: []*forlockv1.RestorePoint{{
		Id: fmt.Sprintf("%016x0000", fresh.UnixNano()), NodeId: "n1", CreatedAt: timestamppb.New(fresh),
		Artifacts: []*forlockv1.Artifact{{Id: "a2", Kind: forlockv1.ArtifactKind_ARTIFACT_KIND_REDIS, SizeBytes: 1,
			State: forlockv1.ArtifactState_ARTIFACT_STATE_AVAILABLE, CreatedAt: timestamppb.New(fresh)}}}}}))
	require.Empty(t, r.step(time.Second))
	fresh = r.now.Add(-time.Minute)
	require.NoError(t, r.st.SaveJobs(store.JobWrite{RestorePoints: []*forlockv1.RestorePoint{{
		Id: fmt.Sprintf("%016x0000", fresh.UnixNano()), NodeId: "n1", CreatedAt: timestamppb.New(fresh),
		Artifacts: []*forlockv1.Artifact{{Id: "a3", Kind: forlockv1.ArtifactKind_ARTIFACT_KIND_POSTGRES, SizeBytes: 1,
			State: forlockv1.ArtifactState_ARTIFACT_STATE_AVAILABLE, CreatedAt: timestamppb.New(fresh)}}}}}))
	require.Equal(t, []string{"resolved ForlockBackupTooOld"}, r.step(time.Second), "a fresh PostgreSQL backup resolves it")
}

func mustSelector(t *testing.T, s string) labels.Selector {
	t.Helper()
	sel, err := labels.ParseSelector(s)
	require.NoError(t, err)
	return sel
}

func TestFiringSetCapped(t *testing.T) {
	r := newRig(t)
	r.cfg.MaxFiring = 3
	var err error
	r.e, err = New(r.cfg)
	require.NoError(t, err)
	var cs []*forlockv1.CheckResult
	for i := range 5 {
		cs = append(cs, check(fmt.Sprintf("c%d", i), crit))
	}
	r.fleet.set(sample(cs...))
	var logs bytes.Buffer
	r.e.cfg.Log = slog.New(slog.NewTextHandler(&logs, nil))
	require.Len(t, r.step(0), 3)
	require.Len(t, r.e.Firing(nil), 3)
	require.Contains(t, logs.String(), `msg="alerts: firing set full; alerts not raised" not_raised=2 max=3`)
}

// An agent's check message may quote anything; it never reaches an alert.
// Its twin: the check's name and the node's do.
func TestNoCheckMessageInAlerts(t *testing.T) {
	r := newRig(t)
	c := check("postgres", crit)
	c.Message = "connect failed: password=s3cr3t-Pa55 rejected"
	r.fleet.set(sample(c))
	require.Equal(t, []string{"firing ForlockCheckCritical"}, r.step(0))
	raw, err := r.st.Alerts()
	require.NoError(t, err)
	require.Len(t, raw, 1)
	for _, v := range raw {
		require.NotContains(t, string(v), "s3cr3t")
		require.Contains(t, string(v), `"summary":"check postgres of node web-1 is CRITICAL"`)
	}
	for _, a := range r.e.Firing(nil) {
		require.NotContains(t, fmt.Sprint(a), "s3cr3t")
	}
}
