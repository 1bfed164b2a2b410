package scheduler

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/forlock/fleet/controlplane/internal/store"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// submits records what retention submits.
type submits struct{ reqs []*forlockv1.SubmitJobRequest }

func (f *submits) Submit(_ context.Context, req *forlockv1.SubmitJobRequest) (*forlockv1.Job, bool, error) {
	f.reqs = append(f.reqs, req)
	return &forlockv1.Job{Id: "j"}, true, nil
}

func (f *submits) Get(string) (*forlockv1.Job, error) { return nil, nil }

// TestWALRetention on a real catalog with a fake clock: WAL that ended
// over 7 days ago is deleted, but not from the oldest available base
// backup's WAL start on; the young range and the range across the edge
// stay; after the delete task's commit the catalog holds what is left and
// the next day's pass deletes nothing more.
func TestWALRetention(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "cp.db"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	dest := &forlockv1.BackupDestination{Kind: &forlockv1.BackupDestination_Dir{Dir: "/b"}}
	rng := func(start, end string, endAge time.Duration) *forlockv1.WalRange {
		return &forlockv1.WalRange{NodeId: "n1", Timeline: 1, StartLsn: start, EndLsn: end, StartTime: timestamppb.New(now.Add(-endAge - time.Hour)),
			EndTime: timestamppb.New(now.Add(-endAge)), Destination: dest, Segments: 4, SizeBytes: 4 << 24, KeyIds: []string{"k"}}
	}
	_, err = st.MergeWalRanges(map[string][]*forlockv1.WalRange{"n1": {
		rng("0/1000000", "0/5000000", 20*day), // old, before the base: deleted whole
		rng("0/7000000", "0/B000000", 10*day), // old, holds the base's start 0/9000028: deleted up to it
		rng("0/D000000", "0/F000000", 6*day),  // young: kept
	}})
	require.NoError(t, err)
	base := &forlockv1.RestorePoint{Id: "rp1", NodeId: "n1", Artifacts: []*forlockv1.Artifact{{
		Id: "rp1-postgres", Kind: forlockv1.ArtifactKind_ARTIFACT_KIND_POSTGRES, PostgresFormat: forlockv1.PostgresFormat_POSTGRES_FORMAT_PHYSICAL,
		State: forlockv1.ArtifactState_ARTIFACT_STATE_AVAILABLE, WalStartLsn: "0/9000028", Timeline: 1, BackupEndTime: timestamppb.New(now.Add(-10 * day)),
	}}}
	require.NoError(t, st.SaveJobs(store.JobWrite{RestorePoints: []*forlockv1.RestorePoint{base}}))

	jobs := &submits{}
	s, err := New(Config{Jobs: jobs, Catalog: st, WAL: st})
	require.NoError(t, err)
	s.ApplyWALRetention(t.Context(), now)
	require.Len(t, jobs.reqs, 1)
	req := jobs.reqs[0]
	require.Equal(t, []string{"n1"}, req.GetTarget().GetNodes())
	require.Equal(t, "wal-retention/n1/20261203", req.GetIdempotencyKey())
	wal := req.GetSpec().GetDeleteBackup().GetWal()
	require.Len(t, wal, 2)
	require.Equal(t, "0/1000000", wal[0].GetStartLsn())
	require.Equal(t, "0/5000000", wal[0].GetEndLsn())
	require.Equal(t, "0/7000000", wal[1].GetStartLsn())
	require.Equal(t, "0/9000028", wal[1].GetEndLsn(), "never past the base backup's WAL start")

	// The delete task succeeded: the engine commits the trims.
	var trims []store.WalTrim
	for _, r := range wal {
		trims = append(trims, store.WalTrim{NodeID: "n1", Range: r})
	}
	require.NoError(t, st.SaveJobs(store.JobWrite{WalTrims: trims}))
	left, err := st.WalRanges("n1")
	require.NoError(t, err)
	require.Len(t, left, 2)
	require.Equal(t, "0/9000000", left[0].GetStartLsn(), "the segment holding the base's start stays")
	require.Equal(t, "0/D000000", left[1].GetStartLsn())

	// A week later the base is still the oldest: nothing more can go but
	// the young range, now old too, which is after the base: kept.
	jobs.reqs = nil
	s.ApplyWALRetention(t.Context(), now.Add(day))
	require.Empty(t, jobs.reqs)
}
