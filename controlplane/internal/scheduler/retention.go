package scheduler

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/forlock/fleet/controlplane/internal/jobs"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// Catalog is what retention reads of the backup catalog: every restore
// point, newest first, from before (exclusive; "" for the newest) until fn
// returns false.
type Catalog interface {
	ScanRestorePoints(before string, fn func(*forlockv1.RestorePoint) bool) error
}

// ApplyRetention submits a delete_backup job for every restore point that
// a schedule made longer ago than its keep, but the newest of each node.
// One job a day at most per restore point (an offline node's is skipped
// and tried again the next day). Run calls it after each scheduled backup
// and every RetentionInterval.
func (s *Scheduler) ApplyRetention(ctx context.Context, now time.Time) {
	s.applyRetention(ctx, s.cfg.Backups, now)
}

func (s *Scheduler) applyRetention(ctx context.Context, scheds []BackupSchedule, now time.Time) {
	expired, err := s.expiredRestorePoints(scheds, now)
	if err != nil {
		s.log.Warn("backup retention: cannot read the catalog", "error", err.Error())
		return
	}
	for _, rp := range expired {
		job, created, err := s.cfg.Jobs.Submit(ctx, &forlockv1.SubmitJobRequest{
			Spec:           &forlockv1.JobSpec{Kind: &forlockv1.JobSpec_DeleteBackup{DeleteBackup: &forlockv1.DeleteBackupSpec{RestorePointId: rp.GetId()}}},
			Target:         &forlockv1.Target{Nodes: []string{rp.GetNodeId()}},
			Rollout:        &forlockv1.Rollout{OfflinePolicy: forlockv1.OfflinePolicy_OFFLINE_POLICY_SKIP},
			IdempotencyKey: fmt.Sprintf("backup-retention/%s/%s", rp.GetId(), now.UTC().Format("20060102")),
		})
		switch {
		case err != nil:
			s.log.Warn("backup retention: delete not submitted", "restore_point", rp.GetId(), "node", rp.GetNodeName(), "error", err.Error())
		case created:
			s.log.Info("backup retention: delete submitted", "restore_point", rp.GetId(), "node", rp.GetNodeName(),
				"created", rp.GetCreatedAt().AsTime().Format(time.RFC3339), "job_id", job.GetId())
		}
	}
}

// expiredRestorePoints returns the restore points retention deletes. The
// jobs are looked up after the catalog scan, never inside it: a bbolt read
// opened inside another, while a commit waits to grow the file, deadlocks.
func (s *Scheduler) expiredRestorePoints(scheds []BackupSchedule, now time.Time) ([]*forlockv1.RestorePoint, error) {
	var all []*forlockv1.RestorePoint
	if err := s.cfg.Catalog.ScanRestorePoints("", func(rp *forlockv1.RestorePoint) bool {
		all = append(all, rp)
		return true
	}); err != nil {
		return nil, err
	}
	scheduleOf := map[string]string{} // job ID -> schedule name, "" for none
	for _, rp := range all {
		if _, ok := scheduleOf[rp.GetJobId()]; ok {
			continue
		}
		job, err := s.cfg.Jobs.Get(rp.GetJobId())
		if err != nil && !errors.Is(err, jobs.ErrNotFound) {
			return nil, err
		}
		name := ""
		if rest, ok := strings.CutPrefix(job.GetIdempotencyKey(), scheduleKeyPrefix); ok {
			name, _, _ = strings.Cut(rest, "/")
		}
		scheduleOf[rp.GetJobId()] = name
	}
	return expired(all, func(rp *forlockv1.RestorePoint) string { return scheduleOf[rp.GetJobId()] }, scheds, now), nil
}

// expired picks, from restore points newest first, those a schedule made
// more than its keep ago that still hold an available artifact, keeping
// the newest such restore point of each node and schedule whatever its
// age.
func expired(rps []*forlockv1.RestorePoint, scheduleOf func(*forlockv1.RestorePoint) string, scheds []BackupSchedule, now time.Time) []*forlockv1.RestorePoint {
	var out []*forlockv1.RestorePoint
	newest := map[string]bool{} // schedule + node: its newest was seen
	for _, rp := range rps {
		name := scheduleOf(rp)
		i := slices.IndexFunc(scheds, func(sc BackupSchedule) bool { return sc.Name == name })
		if name == "" || i < 0 || !slices.ContainsFunc(rp.GetArtifacts(), available) {
			continue
		}
		key := name + "\x00" + rp.GetNodeId()
		if !newest[key] {
			newest[key] = true
			continue
		}
		if keep := scheds[i].Keep; keep > 0 && now.Sub(rp.GetCreatedAt().AsTime()) > keep {
			out = append(out, rp)
		}
	}
	return out
}

func available(a *forlockv1.Artifact) bool {
	return a.GetState() == forlockv1.ArtifactState_ARTIFACT_STATE_AVAILABLE
}
