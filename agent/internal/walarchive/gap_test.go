package walarchive

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/forlock/fleet/agent/internal/checks"
)

// TestSlotLostIsAGap drops the archive's replication slot while the agent
// is away and lets the server move on: the archiver creates a new slot,
// its WAL starts after a hole, the report and the check say CRITICAL naming
// where the contiguous WAL ends, and a base backup after the hole heals it.
func TestSlotLostIsAGap(t *testing.T) {
	n := startNode(t)
	r := newRig(t, n)
	r.start(t)
	eventually(t, time.Minute, "streaming", func() bool { return r.arch.Report().GetStreaming() })
	start, err := ParseLSN(n.psql(t, "SELECT pg_current_wal_lsn()"))
	require.NoError(t, err)
	require.NoError(t, r.arch.NoteBaseBackup(1, start))
	seg := n.currentSegment(t)
	n.psql(t, "SELECT pg_switch_wal()")
	eventually(t, 3*time.Minute, "the segment stored", func() bool { return r.fetch(t, 1, seg) != nil })
	require.Equal(t, checks.OK, checks.EvaluateWal(r.arch.Health(), time.Now()).Status)
	require.False(t, r.arch.Report().GetGap())

	r.stop()
	n.psql(t, "SELECT pg_drop_replication_slot('"+DefaultSlot+"')")
	for range 3 { // WAL the archive never sees
		n.psql(t, "CREATE TABLE IF NOT EXISTS filler (x int); INSERT INTO filler VALUES (1)")
		n.psql(t, "SELECT pg_switch_wal()")
	}
	n.psql(t, "CHECKPOINT")
	r.start(t)
	eventually(t, 3*time.Minute, "a gap reported", func() bool { return r.arch.Report().GetGap() })
	rep := r.arch.Report()
	require.Len(t, rep.GetRanges(), 2)
	require.Equal(t, rep.GetRanges()[0].GetEndLsn(), rep.GetGapAfterLsn())
	res := checks.EvaluateWal(r.arch.Health(), time.Now())
	require.Equal(t, checks.Critical, res.Status)
	require.Contains(t, res.Summary, "gap in the WAL archive after "+rep.GetGapAfterLsn())

	// A base backup after the hole heals it.
	base, err := ParseLSN(n.psql(t, "SELECT pg_current_wal_lsn()"))
	require.NoError(t, err)
	newStart, err := ParseLSN(rep.GetRanges()[1].GetStartLsn())
	require.NoError(t, err)
	require.GreaterOrEqual(t, base, newStart)
	require.NoError(t, r.arch.NoteBaseBackup(1, base))
	eventually(t, time.Minute, "the gap healed", func() bool { return !r.arch.Report().GetGap() })
	require.Equal(t, checks.OK, checks.EvaluateWal(r.arch.Health(), time.Now()).Status)
}
