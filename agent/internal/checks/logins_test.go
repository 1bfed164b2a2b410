package checks

import (
	"context"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/forlock/fleet/agent/internal/logins"
)

type snapshot logins.Snapshot

func (s snapshot) Snapshot() logins.Snapshot { return logins.Snapshot(s) }

func counts(pairs ...any) []logins.Count {
	var out []logins.Count
	for i := 0; i < len(pairs); i += 2 {
		out = append(out, logins.Count{Addr: netip.MustParseAddr(pairs[i].(string)), Count: pairs[i+1].(int)})
	}
	return out
}

func TestEvaluateLogins(t *testing.T) {
	for _, tc := range []struct {
		name     string
		snap     logins.Snapshot
		status   Status
		summary  string
		measured int // failed_logins_per_minute measurements
	}{
		{"quiet", logins.Snapshot{Following: true}, OK, "0 address(es) with failed logins, 0 refused in the last minute", 0},
		{"exactly 10 is not more than 10", logins.Snapshot{Following: true, Failed: counts("192.0.2.1", 10), Blocked: 2},
			OK, "1 address(es) with failed logins, 2 refused in the last minute; worst 192.0.2.1 (10)", 1},
		{"11 is", logins.Snapshot{Following: true, Failed: counts("192.0.2.1", 11, "192.0.2.2", 3)},
			Critical, "more than 10 failed logins in the last minute from 192.0.2.1 (11); 2 address(es)", 2},
		{"names at most five, measures at most five", logins.Snapshot{Following: true,
			Failed: counts("192.0.2.1", 30, "192.0.2.2", 29, "192.0.2.3", 28, "192.0.2.4", 27, "192.0.2.5", 26, "192.0.2.6", 25)},
			Critical, "from 192.0.2.1 (30), 192.0.2.2 (29), 192.0.2.3 (28), 192.0.2.4 (27), 192.0.2.5 (26);", 5},
		{"not following", logins.Snapshot{Problem: "cannot follow the nginx container's log: no container"},
			Unknown, "cannot follow the nginx container's log: no container: check that nginx runs", 0},
		{"an attack seen before the log was lost still counts", logins.Snapshot{Problem: "x", Failed: counts("2001:db8::1", 12)},
			Critical, "from 2001:db8::1 (12)", 1},
		{"evictions are said", logins.Snapshot{Following: true, Evicted: 7}, OK, "7 address(es) dropped for room", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := Logins{Source: snapshot(tc.snap)}.Run(context.Background())
			assert.Equal(t, "logins", r.Name)
			assert.Equal(t, tc.status, r.Status, r.Summary)
			assert.Contains(t, r.Summary, tc.summary)
			require.Len(t, r.Measurements, tc.measured+1)
			for i, m := range r.Measurements[:tc.measured] {
				assert.Equal(t, "failed_logins_per_minute", m.Name)
				assert.Equal(t, tc.snap.Failed[i].Addr.String(), m.Subject)
				assert.InDelta(t, float64(tc.snap.Failed[i].Count), m.Value, 0)
			}
			last := r.Measurements[tc.measured]
			assert.Equal(t, Measurement{Name: "blocked_addresses", Value: float64(tc.snap.Blocked)}, last)
		})
	}
}
