package store

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/timestamppb"

	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

var walT0 = time.Date(2026, 12, 3, 18, 0, 0, 0, time.UTC)

func wr(tl uint32, start, end string, endMin int, keys ...string) *forlockv1.WalRange {
	return &forlockv1.WalRange{
		NodeId: "n1", Timeline: tl, StartLsn: start, EndLsn: end,
		StartTime: timestamppb.New(walT0), EndTime: timestamppb.New(walT0.Add(time.Duration(endMin) * time.Minute)),
		Destination: &forlockv1.BackupDestination{Kind: &forlockv1.BackupDestination_Dir{Dir: "/backups"}},
		Segments:    1, SizeBytes: 100, KeyIds: keys,
	}
}

func TestMergeWalRangesGrowsOneEntryAndIsIdempotent(t *testing.T) {
	s, _ := openTest(t)
	changed, err := s.MergeWalRanges(map[string][]*forlockv1.WalRange{"n1": {wr(1, "0/1000000", "0/2000000", 1, "k1")}})
	require.NoError(t, err)
	require.True(t, changed)

	// The same report again: nothing changes, nothing is written.
	st := s.db.Stats()
	before := st.TxStats.GetWrite()
	changed, err = s.MergeWalRanges(map[string][]*forlockv1.WalRange{"n1": {wr(1, "0/1000000", "0/2000000", 1, "k1")}})
	require.NoError(t, err)
	require.False(t, changed)
	st = s.db.Stats()
	require.Equal(t, before, st.TxStats.GetWrite(), "an unchanged report must not write")

	// The range grows: still one entry, the end moved, keys joined.
	changed, err = s.MergeWalRanges(map[string][]*forlockv1.WalRange{"n1": {wr(1, "0/1000000", "0/3500000", 3, "k2")}})
	require.NoError(t, err)
	require.True(t, changed)
	got, err := s.WalRanges("n1")
	require.NoError(t, err)
	require.Len(t, got, 1)
	require.Equal(t, "0/1000000", got[0].GetStartLsn())
	require.Equal(t, "0/3500000", got[0].GetEndLsn())
	require.Equal(t, []string{"k1", "k2"}, got[0].GetKeyIds())
	require.Equal(t, walT0.Add(3*time.Minute), got[0].GetEndTime().AsTime())

	// A report of a later start (old files deleted by the agent) touching
	// the catalog's range keeps the catalog's start.
	_, err = s.MergeWalRanges(map[string][]*forlockv1.WalRange{"n1": {wr(1, "0/3000000", "0/4000000", 4, "k2")}})
	require.NoError(t, err)
	got, err = s.WalRanges("n1")
	require.NoError(t, err)
	require.Len(t, got, 1)
	require.Equal(t, "0/1000000", got[0].GetStartLsn())
	require.Equal(t, "0/4000000", got[0].GetEndLsn())

	// A gap starts a second range; another timeline a third; a range that
	// bridges the gap joins the first two.
	_, err = s.MergeWalRanges(map[string][]*forlockv1.WalRange{"n1": {wr(1, "0/6000000", "0/7000000", 7), wr(2, "0/7000000", "0/8000000", 8)}})
	require.NoError(t, err)
	got, err = s.WalRanges("n1")
	require.NoError(t, err)
	require.Len(t, got, 3)
	_, err = s.MergeWalRanges(map[string][]*forlockv1.WalRange{"n1": {wr(1, "0/3000000", "0/6000000", 6)}})
	require.NoError(t, err)
	got, err = s.WalRanges("n1")
	require.NoError(t, err)
	require.Len(t, got, 2)
	require.Equal(t, "0/1000000", got[0].GetStartLsn())
	require.Equal(t, "0/7000000", got[0].GetEndLsn())
	require.Equal(t, uint32(2), got[1].GetTimeline())

	// Another destination never merges with the first.
	other := wr(1, "0/1000000", "0/2000000", 1)
	other.Destination = &forlockv1.BackupDestination{Kind: &forlockv1.BackupDestination_Dir{Dir: "/elsewhere"}}
	_, err = s.MergeWalRanges(map[string][]*forlockv1.WalRange{"n1": {other}})
	require.NoError(t, err)
	got, err = s.WalRanges("n1")
	require.NoError(t, err)
	require.Len(t, got, 3)
}

func TestWalTrimOnDeleteCommit(t *testing.T) {
	s, _ := openTest(t)
	_, err := s.MergeWalRanges(map[string][]*forlockv1.WalRange{"n1": {wr(1, "0/1000000", "0/5800000", 5, "k1"), wr(1, "0/7000000", "0/8000000", 8, "k2")}})
	require.NoError(t, err)
	// Delete everything wholly before 0/3800000: the segment 0/3000000 stays.
	require.NoError(t, s.SaveJobs(JobWrite{WalTrims: []WalTrim{{NodeID: "n1", Range: wr(1, "0/1000000", "0/3800000", 0)}}}))
	got, err := s.WalRanges("n1")
	require.NoError(t, err)
	require.Len(t, got, 2)
	require.Equal(t, "0/3000000", got[0].GetStartLsn())
	require.Equal(t, "0/5800000", got[0].GetEndLsn())

	// The first archive key is named by no range once its range is gone.
	for i, id := range []string{"k1", "k2", "k3"} {
		require.NoError(t, s.PutArchiveKey(ArchiveKey{NodeID: "n1", KeyID: id, Wrapped: []byte{byte(i)}, CreatedAt: walT0}))
	}
	require.NoError(t, s.SaveJobs(JobWrite{WalTrims: []WalTrim{{NodeID: "n1", Range: wr(1, "0/1000000", "0/6000000", 0)}}}))
	got, err = s.WalRanges("n1")
	require.NoError(t, err)
	require.Len(t, got, 1)
	require.Equal(t, "0/7000000", got[0].GetStartLsn())
	n, err := s.PruneArchiveKeys("n1", walT0)
	require.NoError(t, err)
	require.Zero(t, n, "keys made since before are kept")
	n, err = s.PruneArchiveKeys("n1", walT0.Add(time.Second))
	require.NoError(t, err)
	require.Equal(t, 1, n)
	keys, err := s.ArchiveKeys("n1")
	require.NoError(t, err)
	require.Len(t, keys, 2)
	require.Equal(t, "k2", keys[0].KeyID, "named by a range: kept")
	require.Equal(t, "k3", keys[1].KeyID, "the current key: kept")
}

// BenchmarkMergeWalRanges: an unchanged report (the common case: agents
// report every few seconds) is one read transaction; a grown range is a
// write (one fsync).
func BenchmarkMergeWalRanges(b *testing.B) {
	s, err := Open(b.TempDir() + "/fleet.db")
	require.NoError(b, err)
	b.Cleanup(func() { _ = s.Close() })
	report := func(end string) map[string][]*forlockv1.WalRange {
		out := map[string][]*forlockv1.WalRange{}
		for n := range 100 {
			r := wr(1, "0/1000000", end, 1, "k1")
			r.NodeId = string(rune('a'+n%26)) + string(rune('a'+n/26))
			out[r.NodeId] = []*forlockv1.WalRange{r}
		}
		return out
	}
	_, err = s.MergeWalRanges(report("0/2000000"))
	require.NoError(b, err)
	b.Run("unchanged-100-nodes", func(b *testing.B) {
		same := report("0/2000000")
		for b.Loop() {
			changed, err := s.MergeWalRanges(same)
			require.NoError(b, err)
			require.False(b, changed)
		}
	})
	b.Run("grown-100-nodes", func(b *testing.B) {
		end := uint64(0x2000000)
		for b.Loop() {
			end += 0x1000
			changed, err := s.MergeWalRanges(report(fmt.Sprintf("0/%X", end)))
			require.NoError(b, err)
			require.True(b, changed)
		}
	})
}
