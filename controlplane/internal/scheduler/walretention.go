package scheduler

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/forlock/fleet/controlplane/internal/store"
	"github.com/forlock/fleet/internal/pglsn"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// DefaultWALRetention is how long archived WAL is kept by default.
const DefaultWALRetention = 7 * 24 * time.Hour

// WALCatalog is what WAL retention reads of the WAL catalog.
type WALCatalog interface {
	WalNodes() ([]string, error)
	WalRanges(nodeID string) ([]*forlockv1.WalRange, error)
	WalBases() (map[string][]store.WalBase, error)
}

// ApplyWALRetention submits, per node, a delete_backup job for the WAL
// that ended more than the WAL retention before now, but never the WAL
// from the start of the node's oldest available physical base backup on
// (a restore from it replays that). A range that spans the retention's
// edge is kept whole: only its end time is known. The catalog is trimmed
// when the task succeeds. One job a day per node at most.
func (s *Scheduler) ApplyWALRetention(ctx context.Context, now time.Time) {
	if s.cfg.WAL == nil || s.cfg.Catalog == nil {
		return
	}
	dels, err := s.walDeletions(now)
	if err != nil {
		s.log.Warn("WAL retention: cannot read the catalog", "error", err.Error())
		return
	}
	for node, wal := range dels {
		job, created, err := s.cfg.Jobs.Submit(ctx, &forlockv1.SubmitJobRequest{
			Spec:           &forlockv1.JobSpec{Kind: &forlockv1.JobSpec_DeleteBackup{DeleteBackup: &forlockv1.DeleteBackupSpec{Wal: wal}}},
			Target:         &forlockv1.Target{Nodes: []string{node}},
			Rollout:        &forlockv1.Rollout{OfflinePolicy: forlockv1.OfflinePolicy_OFFLINE_POLICY_SKIP},
			IdempotencyKey: fmt.Sprintf("wal-retention/%s/%s", node, now.UTC().Format("20060102")),
		})
		switch {
		case err != nil:
			s.log.Warn("WAL retention: delete not submitted", "node_id", node, "error", err.Error())
		case created:
			s.log.Info("WAL retention: delete submitted", "node_id", node, "ranges", len(wal), "job_id", job.GetId())
		}
	}
}

// walDeletions returns, per node, the WAL ranges to delete: each a
// cataloged range with its end_lsn set to where deletion stops.
func (s *Scheduler) walDeletions(now time.Time) (map[string][]*forlockv1.WalRange, error) {
	keep := s.cfg.WALRetention
	if keep <= 0 {
		keep = DefaultWALRetention
	}
	cutoff := now.Add(-keep)
	bases, err := s.cfg.WAL.WalBases()
	if err != nil {
		return nil, err
	}
	nodes, err := s.cfg.WAL.WalNodes()
	if err != nil {
		return nil, err
	}
	out := map[string][]*forlockv1.WalRange{}
	for _, node := range nodes {
		ranges, err := s.cfg.WAL.WalRanges(node)
		if err != nil {
			return nil, err
		}
		var base store.WalBase // the oldest: bases are newest first
		hasBase := len(bases[node]) > 0
		if hasBase {
			base = bases[node][len(bases[node])-1]
		}
		for _, r := range ranges {
			if r.GetEndTime().AsTime().After(cutoff) {
				continue // young, or spanning the edge
			}
			start, _ := pglsn.Parse(r.GetStartLsn())
			stop, _ := pglsn.Parse(r.GetEndLsn())
			if hasBase && r.GetTimeline() == base.Artifact.GetTimeline() && base.Start < stop {
				stop = base.Start // the base backup replays from here
			}
			if hasBase && r.GetTimeline() > base.Artifact.GetTimeline() {
				continue // newer than the base's timeline: needed after it
			}
			if stop-stop%pglsn.SegmentSize <= start {
				continue // no whole file before stop
			}
			d := proto.CloneOf(r)
			d.EndLsn = stop.String()
			out[node] = append(out[node], d)
		}
	}
	return out, nil
}

func (s *Scheduler) runWALRetention(ctx context.Context, every time.Duration) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-t.C:
			s.ApplyWALRetention(ctx, now)
		}
	}
}
