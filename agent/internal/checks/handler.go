package checks

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/forlock/fleet/agent/internal/tasks"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// Kind is the job kind the Handler runs.
const Kind = "health_check"

// Handler runs its checks as a health_check task: one detail line per
// check; the task fails if any check is CRITICAL, and succeeds otherwise
// with any WARN or UNKNOWN named in its message.
type Handler struct {
	Checks []Check
}

// Run runs every check in order, reporting progress after each.
func (h Handler) Run(ctx context.Context, _ *forlockv1.JobSpec, report func(*forlockv1.Progress)) (tasks.Result, error) {
	results := make([]Result, 0, len(h.Checks))
	var res tasks.Result
	for i, c := range h.Checks {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		report(&forlockv1.Progress{Phase: "check " + c.Name(), Percent: uint32(100 * i / len(h.Checks))}) //nolint:gosec // i < len
		r := c.Run(ctx)
		results = append(results, r)
		res.Details = append(res.Details, r.String())
	}
	msg, err := Summarize(results)
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
		return "", errors.New(strings.Join(append(crit, other...), "; "))
	}
	if len(other) > 0 {
		return fmt.Sprintf("%d of %d checks OK; %s", len(results)-len(other), len(results), strings.Join(other, "; ")), nil
	}
	return fmt.Sprintf("all %d checks OK", len(results)), nil
}
