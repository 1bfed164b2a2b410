package checks

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/forlock/fleet/agent/internal/tasks"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// Handler runs the suite as a health_check task: one detail line per
// check and the structured report; the task fails if any check is
// CRITICAL, and succeeds otherwise with any WARN or UNKNOWN named in its
// message.
type Handler struct {
	Suite *Suite
	// Publish, if set, receives each report (the Monitor keeps it for the
	// heartbeats).
	Publish func(*forlockv1.HealthReport)
}

// Run runs every check concurrently.
func (h Handler) Run(ctx context.Context, _ tasks.Assignment, report func(*forlockv1.Progress)) (tasks.Result, error) {
	report(&forlockv1.Progress{Phase: "running health checks"})
	rep := h.Suite.Run(ctx)
	if err := ctx.Err(); err != nil {
		return tasks.Result{}, err
	}
	res := tasks.Result{Health: rep.Proto()}
	for _, r := range rep.Results {
		res.Details = append(res.Details, clip(r.String(), maxMessageLen))
	}
	if h.Publish != nil {
		h.Publish(res.Health)
	}
	msg, err := Summarize(rep.Results)
	res.Message = msg
	return res, err
}

// Summarize turns check results into a task message, and an error when a
// check is CRITICAL: "CRITICAL: disk 5% free (…); WARN: memory 85% used
// (…)". With nothing to report it is "all 2 checks OK".
func Summarize(results []Result) (string, error) {
	var crit, other []string
	for _, r := range results {
		switch r.Status {
		case OK:
		case Critical:
			crit = append(crit, r.Status.String()+": "+r.Name+" "+r.Summary)
		default:
			other = append(other, r.Status.String()+": "+r.Name+" "+r.Summary)
		}
	}
	if len(crit) > 0 {
		return "", errors.New(clip(strings.Join(append(crit, other...), "; "), maxMessageLen))
	}
	if len(other) > 0 {
		return clip(fmt.Sprintf("%d of %d checks OK; %s", len(results)-len(other), len(results), strings.Join(other, "; ")), maxMessageLen), nil
	}
	return fmt.Sprintf("all %d checks OK", len(results)), nil
}
