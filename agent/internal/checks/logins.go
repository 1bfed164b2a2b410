package checks

import (
	"context"
	"fmt"
	"strings"

	"github.com/forlock/fleet/agent/internal/logins"
)

// FailedLoginsCritical is the operations guide's alert threshold ("Critical
// Metrics: Security"): more than 10 failed logins a minute from one address
// (normal: fewer than 10).
const FailedLoginsCritical = 10

// loginsReported is how many addresses the check names at most.
const loginsReported = 5

// LoginsSource is what the logins check reads (logins.Watcher).
type LoginsSource interface {
	Snapshot() logins.Snapshot
}

// Logins is the node's security signals from nginx's access log: failed
// logins per client address in the last minute and the addresses nginx
// refused.
type Logins struct {
	Source LoginsSource
}

// Name is "logins".
func (Logins) Name() string { return "logins" }

// Run reads the watcher's last minute.
func (l Logins) Run(context.Context) Result {
	return EvaluateLogins(l.Source.Snapshot())
}

// EvaluateLogins judges a minute of nginx's access log: CRITICAL when an
// address has more than 10 failed logins, else UNKNOWN when the log is not
// being followed (what was seen before still counts), else OK. The
// measurements are failed_logins_per_minute for the 5 worst addresses
// (subject: the address) and blocked_addresses.
func EvaluateLogins(s logins.Snapshot) Result {
	r := Result{Name: "logins"}
	var over []string
	for i, c := range s.Failed {
		if i < loginsReported {
			r.Measurements = append(r.Measurements, Measurement{Name: "failed_logins_per_minute", Value: float64(c.Count), Subject: c.Addr.String()})
		}
		if c.Count > FailedLoginsCritical && len(over) < loginsReported {
			over = append(over, fmt.Sprintf("%s (%d)", c.Addr, c.Count))
		}
	}
	r.Measurements = append(r.Measurements, Measurement{Name: "blocked_addresses", Value: float64(s.Blocked)})

	seen := fmt.Sprintf("%d address(es) with failed logins, %d refused in the last minute", len(s.Failed), s.Blocked)
	if len(s.Failed) > 0 && len(over) == 0 {
		seen += fmt.Sprintf("; worst %s (%d)", s.Failed[0].Addr, s.Failed[0].Count)
	}
	if s.Evicted > 0 {
		seen += fmt.Sprintf("; %d address(es) dropped for room since the start", s.Evicted)
	}
	switch {
	case len(over) > 0:
		r.Status = Critical
		r.Summary = fmt.Sprintf("more than %d failed logins in the last minute from %s; %s", FailedLoginsCritical, strings.Join(over, ", "), seen)
	case s.Problem != "":
		r.Status = Unknown
		r.Summary = s.Problem + ": check that nginx runs as the containers setting names it and logs its access log to stdout (access_log /dev/stdout)"
	default:
		r.Summary = seen
	}
	return r
}
