package tasks

import (
	"context"

	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// Handler runs one kind of task. Run gets everything the task needs in a
// (the spec, the job and task IDs, the task's keys or certificate); ctx
// only ends it. Run must end soon after ctx ends (a cancel from the
// control plane or the agent shutting down) and may call report with
// progress as often as it likes: the runner sends at most a few updates a
// second, always the latest. An error fails the task, with the error's
// text as the task's message and the Result's details kept.
type Handler interface {
	Run(ctx context.Context, a Assignment, report func(*forlockv1.Progress)) (Result, error)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, a Assignment, report func(*forlockv1.Progress)) (Result, error)

// Run calls f.
func (f HandlerFunc) Run(ctx context.Context, a Assignment, report func(*forlockv1.Progress)) (Result, error) {
	return f(ctx, a, report)
}

// Result is what a finished task reports.
type Result struct {
	// Message summarises the outcome for people, e.g. "2 checks OK".
	Message string
	// Details are result lines for people, e.g. one per health check.
	Details []string
	// Health is a health_check task's structured report, nil for other
	// kinds.
	Health *forlockv1.HealthReport
	// Artifacts are the artifacts a backup task wrote, reported with its
	// end and journaled with it (they hold no secret). An upgrade reports
	// its pre-upgrade backup's also when it fails.
	Artifacts []*forlockv1.Artifact
	// Upgrade is an upgrade or rollback task's result, reported whatever
	// the task's end.
	Upgrade *forlockv1.UpgradeResult
	// Certificate is what nginx serves after a cert_rotate task.
	Certificate *forlockv1.CertificateInfo
	// RolledBack ends a failed task ROLLED_BACK instead of FAILED: the
	// handler put the node back as it was. The error is the reason.
	RolledBack bool
}
