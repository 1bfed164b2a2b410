package wal

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/forlock/fleet/controlplane/internal/audit"
	"github.com/forlock/fleet/controlplane/internal/jobs"
	"github.com/forlock/fleet/controlplane/internal/store"
	"github.com/forlock/fleet/internal/pglsn"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// Bounds on a WAL report from an agent.
const (
	MaxRanges     = 256
	maxKeyIDs     = 64
	maxKeyIDLen   = 128
	maxErrorLen   = 1024
	flushInterval = 5 * time.Second
	// DefaultHealEvery is the least time between two base backups taken
	// to heal a node's gap.
	DefaultHealEvery = 6 * time.Hour
)

// ErrBadReport is a WAL report refused; the stream that sent it is closed.
var ErrBadReport = errors.New("bad WAL report")

func bad(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrBadReport, fmt.Sprintf(format, args...))
}

// CheckName is the health check a node's archiver state shows as.
const CheckName = "wal_archive"

// Checks shows a node's archiver state among its health checks.
type Checks interface {
	SetCheck(nodeID string, c *forlockv1.CheckResult)
}

// Jobs is what healing needs of the job engine.
type Jobs interface {
	SubmitAs(ctx context.Context, req *forlockv1.SubmitJobRequest, by jobs.Submitter) (*forlockv1.Job, bool, error)
	BackupActive(nodeID string) bool
}

// Config configures an Archive.
type Config struct {
	Store  *store.Store
	Keys   *Keys
	Checks Checks
	// Jobs heals gaps; nil leaves them to the operator.
	Jobs      Jobs
	Log       *slog.Logger
	HealEvery time.Duration
	Now       func() time.Time
}

// State is a node's archiver state as reported; the registry holds it as
// the node's wal_archive check.
type State struct {
	Streaming bool
	Error     string
	Gap       bool
	GapAfter  string
}

// Archive takes agents' WAL reports.
type Archive struct {
	cfg Config

	mu      sync.Mutex
	pending map[string][]*forlockv1.WalRange
}

// New makes an Archive.
func New(cfg Config) *Archive {
	if cfg.HealEvery <= 0 {
		cfg.HealEvery = DefaultHealEvery
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	return &Archive{cfg: cfg, pending: map[string][]*forlockv1.WalRange{}}
}

// Validate checks a report from nodeID and returns its ranges with the
// node ID set. Nothing of a refused report is kept.
func (a *Archive) Validate(nodeID string, r *forlockv1.WalReport) ([]*forlockv1.WalRange, error) {
	if len(r.GetRanges()) > MaxRanges {
		return nil, bad("%d ranges, at most %d", len(r.GetRanges()), MaxRanges)
	}
	if len(r.GetError()) > maxErrorLen {
		return nil, bad("error text over %d bytes", maxErrorLen)
	}
	for _, l := range []string{r.GetGapAfterLsn(), r.GetBaseBackupLsn()} {
		if l == "" {
			continue
		}
		if _, err := pglsn.Parse(l); err != nil {
			return nil, bad("%v", err)
		}
	}
	out := make([]*forlockv1.WalRange, 0, len(r.GetRanges()))
	for i, w := range r.GetRanges() {
		s, err := pglsn.Parse(w.GetStartLsn())
		if err != nil {
			return nil, bad("range %d start: %v", i, err)
		}
		e, err := pglsn.Parse(w.GetEndLsn())
		if err != nil {
			return nil, bad("range %d end: %v", i, err)
		}
		switch {
		case s > e:
			return nil, bad("range %d starts after it ends", i)
		case w.GetTimeline() == 0:
			return nil, bad("range %d has no timeline", i)
		case w.GetEndTime() == nil || (w.GetStartTime() != nil && w.GetEndTime().AsTime().Before(w.GetStartTime().AsTime())):
			return nil, bad("range %d: end time missing, or before its start time", i)
		case len(w.GetKeyIds()) == 0 || len(w.GetKeyIds()) > maxKeyIDs:
			return nil, bad("range %d names %d archive keys: 1 to %d", i, len(w.GetKeyIds()), maxKeyIDs)
		}
		// No destination is the agent's default backup directory.
		if err := jobs.CheckDestination(w.GetDestination()); err != nil {
			return nil, bad("range %d: %v", i, err)
		}
		for _, id := range w.GetKeyIds() {
			if len(id) > maxKeyIDLen {
				return nil, bad("range %d: oversized key ID", i)
			}
			own, err := a.cfg.Keys.Owns(nodeID, id)
			if err != nil {
				return nil, err
			}
			if !own {
				return nil, bad("range %d names archive key %q, not one of this node's", i, id)
			}
		}
		c := proto.CloneOf(w)
		c.NodeId = nodeID
		out = append(out, c)
	}
	return out, nil
}

// Report takes a validated report: its ranges wait for the next flush, its
// state shows at once, and a gap starts healing.
func (a *Archive) Report(ctx context.Context, nodeID, nodeName string, ranges []*forlockv1.WalRange, r *forlockv1.WalReport) {
	now := a.cfg.Now()
	st := State{Streaming: r.GetStreaming(), Error: r.GetError(), Gap: r.GetGap(), GapAfter: r.GetGapAfterLsn()}
	a.mu.Lock()
	a.pending[nodeID] = ranges
	a.mu.Unlock()
	if a.cfg.Checks != nil {
		a.cfg.Checks.SetCheck(nodeID, check(st))
	}
	if st.Gap {
		a.heal(ctx, nodeID, nodeName, st, now)
	}
}

func check(st State) *forlockv1.CheckResult {
	c := &forlockv1.CheckResult{Name: CheckName, Status: forlockv1.CheckStatus_CHECK_STATUS_OK, Message: "streaming"}
	switch {
	case st.Gap:
		c.Status = forlockv1.CheckStatus_CHECK_STATUS_CRITICAL
		c.Message = "WAL gap after " + st.GapAfter + ": point-in-time restore past it needs a new physical base backup (being taken)"
	case !st.Streaming:
		c.Status = forlockv1.CheckStatus_CHECK_STATUS_WARN
		c.Message = "not streaming"
		if st.Error != "" {
			c.Message += ": " + st.Error
		}
	}
	return c
}

// heal submits a physical base backup of the node, as the control plane,
// audited, unless one is queued or running or one was submitted within
// HealEvery (recorded in the store, so a restart does not reset it).
func (a *Archive) heal(ctx context.Context, nodeID, nodeName string, st State, now time.Time) {
	if a.cfg.Jobs == nil || a.cfg.Jobs.BackupActive(nodeID) {
		return
	}
	last, err := a.cfg.Store.WalHealedAt(nodeID)
	if err != nil {
		a.cfg.Log.Warn("WAL gap: cannot read when it was last healed; not healing now", "node", nodeName, "error", err.Error())
		return
	}
	if now.Sub(last) < a.cfg.HealEvery {
		return
	}
	if err := a.cfg.Store.SetWalHealed(nodeID, now); err != nil {
		a.cfg.Log.Warn("WAL gap: cannot record the heal; not healing now", "node", nodeName, "error", err.Error())
		return
	}
	rec := audit.Record{Time: now, Actor: "controlplane", Method: "wal/heal", Target: "node/" + nodeID, Result: audit.ResultOK,
		Summary: "physical base backup after a WAL gap after " + st.GapAfter}
	job, created, err := a.cfg.Jobs.SubmitAs(ctx, &forlockv1.SubmitJobRequest{
		Spec: &forlockv1.JobSpec{Kind: &forlockv1.JobSpec_Backup{Backup: &forlockv1.BackupSpec{
			Only: []forlockv1.ArtifactKind{forlockv1.ArtifactKind_ARTIFACT_KIND_POSTGRES}, PostgresFormat: forlockv1.PostgresFormat_POSTGRES_FORMAT_PHYSICAL}}},
		Target:         &forlockv1.Target{Nodes: []string{nodeID}},
		IdempotencyKey: fmt.Sprintf("wal-heal/%s/%s", nodeID, now.UTC().Format("20060102T150405")),
	}, jobs.Submitter{Audit: []audit.Record{rec}})
	if err != nil {
		a.cfg.Log.Warn("WAL gap: base backup not submitted", "node", nodeName, "error", err.Error())
		return
	}
	if created {
		a.cfg.Log.Info("WAL gap: base backup submitted", "node", nodeName, "gap_after", st.GapAfter, "job_id", job.GetId())
	}
}

// Flush folds the pending ranges into the catalog in one transaction (none
// when nothing changed). On failure they wait for the next flush unless a
// newer report replaced them.
func (a *Archive) Flush() error {
	a.mu.Lock()
	batch := a.pending
	a.pending = map[string][]*forlockv1.WalRange{}
	a.mu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	if _, err := a.cfg.Store.MergeWalRanges(batch); err != nil {
		a.mu.Lock()
		for n, r := range batch {
			if _, newer := a.pending[n]; !newer {
				a.pending[n] = r
			}
		}
		a.mu.Unlock()
		return err
	}
	return nil
}

// Run flushes every few seconds until ctx ends, then once more.
func (a *Archive) Run(ctx context.Context) error {
	t := time.NewTicker(flushInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			if err := a.Flush(); err != nil {
				a.cfg.Log.Warn("WAL catalog: last flush failed", "error", err.Error())
			}
			return nil
		case <-t.C:
			if err := a.Flush(); err != nil {
				a.cfg.Log.Warn("WAL catalog: flush failed; retried", "error", err.Error())
			}
		}
	}
}
