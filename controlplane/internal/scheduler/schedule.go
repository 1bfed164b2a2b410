package scheduler

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/forlock/fleet/controlplane/internal/jobs"
	"github.com/forlock/fleet/internal/labels"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// BackupSchedule is a backup job the control plane submits on a schedule,
// and how long it keeps the restore points that schedule made.
type BackupSchedule struct {
	// Name tells the schedule's jobs and restore points apart: 1-40
	// lower-case letters, digits and '-'.
	Name string
	// Cron is when, in UTC: five fields (minute hour day-of-month month
	// day-of-week) or a descriptor such as @daily or @every 6h.
	Cron string
	// Selector picks the nodes by label; empty means every node.
	Selector string
	// Only, PostgresFormat and Destination are those of `forlockctl backup`.
	Only           []forlockv1.ArtifactKind
	PostgresFormat forlockv1.PostgresFormat
	Destination    *forlockv1.BackupDestination
	// MaxParallel bounds the nodes backing up at once; 0 means no bound.
	MaxParallel uint32
	// Keep is how long the schedule's restore points are kept; 0 keeps
	// them. The newest of each node is kept whatever its age.
	Keep time.Duration

	when cron.Schedule
}

// scheduleKeyPrefix starts the idempotency key of every scheduled backup
// job: backup-schedule/<name>/<fire time>. Retention finds a schedule's
// restore points by it.
const scheduleKeyPrefix = "backup-schedule/"

// DefaultRetentionInterval is how often retention looks at the catalog, as
// well as after every scheduled backup.
const DefaultRetentionInterval = time.Hour

var scheduleName = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,39}$`)

// Check validates s and parses its cron expression; a schedule runs only
// once checked.
func (s *BackupSchedule) Check() error {
	if !scheduleName.MatchString(s.Name) {
		return fmt.Errorf("backup schedule %q: a name is 1-40 lower-case letters, digits and '-'", s.Name)
	}
	when, err := cron.ParseStandard(s.Cron)
	if err != nil || strings.HasPrefix(s.Cron, "TZ=") || strings.HasPrefix(s.Cron, "CRON_TZ=") {
		return fmt.Errorf("backup schedule %s: cron %q: give five fields in UTC (minute hour day-of-month month day-of-week), e.g. \"0 2 * * *\" for 02:00 every day, or @daily, @hourly, @every 6h", s.Name, s.Cron)
	}
	s.when = when
	if _, err := labels.ParseSelector(s.Selector); err != nil {
		return fmt.Errorf("backup schedule %s: selector: %w", s.Name, err)
	}
	if s.Keep < 0 || (s.Keep > 0 && s.Keep < time.Hour) {
		return fmt.Errorf("backup schedule %s: keep %s: give at least 1h, or leave it out to keep everything", s.Name, s.Keep)
	}
	if err := jobs.CheckBackup(s.request(time.Time{}).GetSpec().GetBackup()); err != nil {
		return fmt.Errorf("backup schedule %s: %w", s.Name, err)
	}
	return nil
}

// CheckSchedules checks each schedule (see Check) and that no two share a
// name, since the name keys their jobs and restore points.
func CheckSchedules(scheds []BackupSchedule) error {
	seen := map[string]bool{}
	for i := range scheds {
		sc := &scheds[i]
		if err := sc.Check(); err != nil {
			return err
		}
		if seen[sc.Name] {
			return fmt.Errorf("backup schedule %s: named twice: give each schedule its own name", sc.Name)
		}
		seen[sc.Name] = true
	}
	return nil
}

// next is the schedule's first fire time after t.
func (s *BackupSchedule) next(t time.Time) time.Time { return s.when.Next(t.UTC()) }

// request is the backup job the schedule submits for the fire time at.
func (s *BackupSchedule) request(at time.Time) *forlockv1.SubmitJobRequest {
	target := &forlockv1.Target{All: true}
	if s.Selector != "" {
		target = &forlockv1.Target{LabelSelector: s.Selector}
	}
	return &forlockv1.SubmitJobRequest{
		Spec: &forlockv1.JobSpec{Kind: &forlockv1.JobSpec_Backup{Backup: &forlockv1.BackupSpec{
			Only: s.Only, PostgresFormat: s.PostgresFormat, Destination: s.Destination,
		}}},
		Target: target,
		// A node that is not connected misses this run, not the next.
		Rollout:        &forlockv1.Rollout{MaxParallel: s.MaxParallel, OfflinePolicy: forlockv1.OfflinePolicy_OFFLINE_POLICY_SKIP},
		IdempotencyKey: scheduleKeyPrefix + s.Name + "/" + at.UTC().Format(time.RFC3339),
	}
}

// runBackupSchedules submits each schedule's backup job at its fire times
// and applies retention after each and every retentionEvery, until ctx
// ends. A fire time missed while the control plane was down is not made
// up; the idempotency key keeps a restart at the fire time from running
// it twice (see the package doc).
func (s *Scheduler) runBackupSchedules(ctx context.Context, scheds []BackupSchedule, retentionEvery time.Duration) error {
	type fire struct {
		sc *BackupSchedule
		at time.Time
	}
	var fires []fire
	now := time.Now()
	for i := range scheds {
		f := fire{sc: &scheds[i], at: scheds[i].next(now)}
		fires = append(fires, f)
		s.log.Info("backup schedule", "name", f.sc.Name, "cron", f.sc.Cron, "next", f.at.Format(time.RFC3339))
	}
	if len(fires) == 0 {
		return nil
	}
	retention := time.NewTicker(retentionEvery)
	defer retention.Stop()
	for {
		first := &fires[0]
		for i := range fires {
			if fires[i].at.Before(first.at) {
				first = &fires[i]
			}
		}
		timer := time.NewTimer(time.Until(first.at))
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case <-retention.C:
			timer.Stop()
			s.applyRetention(ctx, scheds, time.Now())
			continue
		case <-timer.C:
		}
		s.SubmitScheduled(ctx, first.sc, first.at)
		s.applyRetention(ctx, scheds, time.Now())
		first.at = first.sc.next(first.at)
	}
}

// SubmitScheduled submits the schedule's backup job for the fire time at,
// once per schedule and fire time whatever the number of calls; it logs
// what it did. Run calls it at each fire time.
func (s *Scheduler) SubmitScheduled(ctx context.Context, sc *BackupSchedule, at time.Time) {
	job, created, err := s.cfg.Jobs.Submit(ctx, sc.request(at))
	switch {
	case err != nil:
		s.log.Warn("backup schedule: job not submitted", "schedule", sc.Name, "at", at.Format(time.RFC3339), "error", err.Error())
	case created:
		s.log.Info("backup schedule: job submitted", "schedule", sc.Name, "at", at.Format(time.RFC3339), "job_id", job.GetId())
	}
}
