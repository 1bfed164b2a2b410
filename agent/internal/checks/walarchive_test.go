package checks

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestEvaluateWal(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		s    WalState
		want Status
		text string
	}{
		{"streaming", WalState{Streaming: true}, OK, "streaming"},
		{"gap wins", WalState{Streaming: true, Gap: true, GapAfter: "0/5000000"}, Critical, "gap in the WAL archive after 0/5000000"},
		{"stopped", WalState{Error: "pg_receivewal ended"}, Warn, "not streaming: pg_receivewal ended"},
		{"failing briefly", WalState{Streaming: true, FailingSince: now.Add(-10 * time.Second), Error: "full"}, OK, "streaming"},
		{"failing long", WalState{Streaming: true, FailingSince: now.Add(-2 * time.Minute), Error: "destination full"}, Warn, "cannot ship WAL for 2m0s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := EvaluateWal(tc.s, now)
			require.Equal(t, tc.want, r.Status)
			require.Contains(t, r.Summary, tc.text)
			require.Equal(t, "wal_archive", r.Name)
		})
	}
	require.Equal(t, Unknown, WalArchive{Read: func() (WalState, bool) { return WalState{}, false }}.Run(t.Context()).Status)
}
