package wal

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/forlock/fleet/controlplane/internal/jobs"
	"github.com/forlock/fleet/controlplane/internal/store"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// submitted counts the healing base backups submitted, and never has one
// active, so only the heal interval holds a second one back.
type submitted struct {
	mu   sync.Mutex
	keys []string
}

func (s *submitted) SubmitAs(_ context.Context, req *forlockv1.SubmitJobRequest, _ jobs.Submitter) (*forlockv1.Job, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys = append(s.keys, req.GetIdempotencyKey())
	return &forlockv1.Job{Id: "j"}, true, nil
}

func (s *submitted) BackupActive(string) bool { return false }

func (s *submitted) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.keys)
}

// The heal interval holds across a restart of the control plane: a gap
// reported again by a node right after a restart does not submit a second
// base backup; once the interval has passed, it does.
func TestHealIntervalOutlivesARestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cp.db")
	now := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	gap := &forlockv1.WalReport{Gap: true, GapAfterLsn: "0/5000000"}
	jb := &submitted{}

	report := func() {
		st, err := store.Open(path)
		require.NoError(t, err)
		defer func() { require.NoError(t, st.Close()) }()
		a := New(Config{Store: st, Jobs: jb, Now: clock, HealEvery: 6 * time.Hour})
		a.Report(t.Context(), "node-1", "n1", nil, gap)
	}
	report()
	require.Equal(t, 1, jb.count())
	now = now.Add(time.Hour)
	report() // a restarted control plane
	require.Equal(t, 1, jb.count(), "a restart must not submit a second healing backup within the interval")
	now = now.Add(5 * time.Hour)
	report()
	require.Equal(t, 2, jb.count(), "past the interval the gap is healed again")
	require.NotEqual(t, jb.keys[0], jb.keys[1])
}
