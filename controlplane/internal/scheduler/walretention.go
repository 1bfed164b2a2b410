package scheduler

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/forlock/fleet/internal/pglsn"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// DefaultWALRetention is how long archived WAL is kept by default.
const DefaultWALRetention = 7 * 24 * time.Hour

// WALCatalog is what WAL retention reads of the WAL catalog.
type WALCatalog interface {
	WalNodes() ([]string, error)
	WalRanges(nodeID string) ([]*forlockv1.WalRange, error)
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
	type pin struct {
		timeline uint32
		start    pglsn.LSN
		end      time.Time
	}
	oldest := map[string]pin{} // node -> oldest available base backup
	if err := s.cfg.Catalog.ScanRestorePoints("", func(rp *forlockv1.RestorePoint) bool {
		for _, a := range rp.GetArtifacts() {
			if a.GetPostgresFormat() != forlockv1.PostgresFormat_POSTGRES_FORMAT_PHYSICAL || !available(a) || a.GetBackupEndTime() == nil {
				continue
			}
			l, err := pglsn.Parse(a.GetWalStartLsn())
			if err != nil {
				continue
			}
			p, seen := oldest[rp.GetNodeId()]
			if !seen || a.GetBackupEndTime().AsTime().Before(p.end) {
				oldest[rp.GetNodeId()] = pin{timeline: a.GetTimeline(), start: l, end: a.GetBackupEndTime().AsTime()}
			}
		}
		return true
	}); err != nil {
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
		base, hasBase := oldest[node]
		for _, r := range ranges {
			if r.GetEndTime().AsTime().After(cutoff) {
				continue // young, or spanning the edge
			}
			start, _ := pglsn.Parse(r.GetStartLsn())
			stop, _ := pglsn.Parse(r.GetEndLsn())
			if hasBase && r.GetTimeline() == base.timeline && base.start < stop {
				stop = base.start // the base backup replays from here
			}
			if hasBase && r.GetTimeline() > base.timeline {
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
