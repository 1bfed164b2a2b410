package scheduler

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/forlock/fleet/internal/labels"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// VerifySchedule is a restore drill the control plane runs on its own: at
// each fire time, a verify_backup job of the newest restore point of each
// online node the selector picks (one job per node: a drill runs beside
// the node that made the restore point).
type VerifySchedule struct {
	// Name: 1-40 lower-case letters, digits and '-'.
	Name string
	// Cron is when, in UTC, as for BackupSchedule.
	Cron string
	// Selector picks the nodes by label; empty means every node.
	Selector string

	when cron.Schedule
}

// DefaultVerifySchedule is the drill the control plane runs when its
// config names none: the operations guide's weekly backup verification
// test, Sundays at 04:00 UTC, on every node.
var DefaultVerifySchedule = VerifySchedule{Name: "weekly", Cron: "0 4 * * 0"}

// verifyKeyPrefix starts the idempotency key of every scheduled drill job:
// verify-schedule/<name>/<node ID>/<fire time>.
const verifyKeyPrefix = "verify-schedule/"

// Check validates v and parses its cron expression.
func (v *VerifySchedule) Check() error {
	if !scheduleName.MatchString(v.Name) {
		return fmt.Errorf("verify schedule %q: a name is 1-40 lower-case letters, digits and '-'", v.Name)
	}
	when, err := cron.ParseStandard(v.Cron)
	if err != nil || strings.HasPrefix(v.Cron, "TZ=") || strings.HasPrefix(v.Cron, "CRON_TZ=") {
		return fmt.Errorf("verify schedule %s: cron %q: give five fields in UTC, e.g. \"0 4 * * 0\" for Sundays 04:00, or @weekly", v.Name, v.Cron)
	}
	v.when = when
	if _, err := labels.ParseSelector(v.Selector); err != nil {
		return fmt.Errorf("verify schedule %s: selector: %w", v.Name, err)
	}
	return nil
}

// CheckVerifySchedules checks each schedule and that no two share a name.
func CheckVerifySchedules(scheds []VerifySchedule) error {
	seen := map[string]bool{}
	for i := range scheds {
		if err := scheds[i].Check(); err != nil {
			return err
		}
		if seen[scheds[i].Name] {
			return fmt.Errorf("verify schedule %s: named twice: give each schedule its own name", scheds[i].Name)
		}
		seen[scheds[i].Name] = true
	}
	return nil
}

// verifyRequest is the drill job of one node for the fire time at.
func (v *VerifySchedule) verifyRequest(node *forlockv1.Node, at time.Time) *forlockv1.SubmitJobRequest {
	return &forlockv1.SubmitJobRequest{
		Spec:           &forlockv1.JobSpec{Kind: &forlockv1.JobSpec_VerifyBackup{VerifyBackup: &forlockv1.VerifyBackupSpec{Latest: true}}},
		Target:         &forlockv1.Target{Nodes: []string{node.GetId()}},
		Rollout:        &forlockv1.Rollout{OfflinePolicy: forlockv1.OfflinePolicy_OFFLINE_POLICY_SKIP},
		IdempotencyKey: verifyKeyPrefix + v.Name + "/" + node.GetId() + "/" + at.UTC().Format(time.RFC3339),
	}
}

// SubmitDrills submits the schedule's drill jobs for the fire time at, one
// per online node it selects, once per node and fire time whatever the
// number of calls, and returns how many it submitted. A node the job engine
// refuses (no restore point yet) is logged and skipped.
func (s *Scheduler) SubmitDrills(ctx context.Context, v *VerifySchedule, at time.Time) int {
	sel, _ := labels.ParseSelector(v.Selector) // checked by Check
	n := 0
	for _, node := range s.cfg.Nodes.List(sel, []forlockv1.NodeState{forlockv1.NodeState_NODE_STATE_ONLINE}) {
		job, created, err := s.cfg.Jobs.Submit(ctx, v.verifyRequest(node, at))
		switch {
		case err != nil:
			s.log.Warn("verify schedule: drill not submitted", "schedule", v.Name, "node", node.GetName(), "at", at.Format(time.RFC3339), "error", err.Error())
		case created:
			n++
			s.log.Info("verify schedule: drill submitted", "schedule", v.Name, "node", node.GetName(), "job_id", job.GetId())
		}
	}
	return n
}

// runVerifySchedules submits each schedule's drills at its fire times until
// ctx ends. A fire time missed while the control plane was down is not
// made up.
func (s *Scheduler) runVerifySchedules(ctx context.Context, scheds []VerifySchedule) error {
	next := make([]time.Time, len(scheds))
	for i := range scheds {
		next[i] = scheds[i].when.Next(time.Now().UTC())
		s.log.Info("verify schedule", "name", scheds[i].Name, "cron", scheds[i].Cron, "next", next[i].Format(time.RFC3339))
	}
	if len(scheds) == 0 {
		return nil
	}
	for {
		first := 0
		for i := range next {
			if next[i].Before(next[first]) {
				first = i
			}
		}
		timer := time.NewTimer(time.Until(next[first]))
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case <-timer.C:
		}
		s.SubmitDrills(ctx, &scheds[first], next[first])
		next[first] = scheds[first].when.Next(next[first])
	}
}
