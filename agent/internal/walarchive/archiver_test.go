package walarchive

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestArchiveShipsSegmentsAndPartial streams a real node's WAL: a commit
// reaches the stored partial within about the ship interval (measured), a
// completed segment decrypts to exactly the bytes PostgreSQL wrote and
// replaces the partial, and a restarted archiver resumes from its state
// without counting a segment twice or losing one.
func TestArchiveShipsSegmentsAndPartial(t *testing.T) {
	n := startNode(t)
	r := newRig(t, n)
	n.psql(t, "CREATE TABLE IF NOT EXISTS wal_probe (v text)")
	r.start(t)
	eventually(t, 30*time.Second, "streaming", func() bool { return r.arch.Report().GetStreaming() })

	// A commit appears in the stored partial segment.
	var lags []time.Duration
	for i := range 5 {
		marker := "probe-" + time.Now().Format("150405.000000") + "-" + string(rune('a'+i))
		seg := n.currentSegment(t)
		committed := time.Now()
		n.psql(t, "INSERT INTO wal_probe VALUES ('"+marker+"')")
		eventually(t, 3*time.Minute, "the commit in the stored partial "+seg, func() bool {
			return bytes.Contains(r.fetch(t, 1, seg+".partial"), []byte(marker))
		})
		lags = append(lags, time.Since(committed))
	}
	t.Logf("commit to stored partial (ship interval 1s, includes the docker exec of psql): %v", lags)

	// Complete the segment: it is stored whole, equal to the server's file,
	// and its partial is gone.
	seg := n.currentSegment(t)
	n.psql(t, "INSERT INTO wal_probe VALUES ('before-switch')")
	n.psql(t, "SELECT pg_switch_wal()")
	// Hashed now: once archived, a checkpoint may recycle the server's file.
	want := n.sh(t, "exec", "-u", "postgres", n.name+"-postgres", "sha256sum", "/var/lib/postgresql/data/pg_wal/"+seg)
	eventually(t, 3*time.Minute, "the complete segment stored", func() bool { return r.fetch(t, 1, seg) != nil })
	got := r.fetch(t, 1, seg)
	require.Len(t, got, SegmentSize)
	require.Equal(t, want[:64], sha256hex(got), "the stored segment is the server's")
	require.Contains(t, string(got), "before-switch")
	eventually(t, 5*time.Second, "the stored partial removed", func() bool { return r.fetch(t, 1, seg+".partial") == nil })
	rep := r.arch.Report()
	require.Len(t, rep.GetRanges(), 1)
	before := rep.GetRanges()[0]
	require.Equal(t, []string{r.key.GetKeyId()}, before.GetKeyIds())

	// Restart: stop, write while stopped, start again from the state file.
	r.stop()
	n.psql(t, "INSERT INTO wal_probe VALUES ('while-stopped')")
	seg2 := n.currentSegment(t)
	n.psql(t, "SELECT pg_switch_wal()")
	r.start(t)
	eventually(t, 3*time.Minute, "the segment written while stopped stored", func() bool { return r.fetch(t, 1, seg2) != nil })
	require.Contains(t, string(r.fetch(t, 1, seg2)), "while-stopped")
	rep = r.arch.Report()
	require.Len(t, rep.GetRanges(), 1, "one contiguous range: %v", rep.GetRanges())
	after := rep.GetRanges()[0]
	require.Equal(t, before.GetStartLsn(), after.GetStartLsn())
	first, err := ParseLSN(before.GetStartLsn())
	require.NoError(t, err)
	s2, err := ParseSegment(seg2)
	require.NoError(t, err)
	// Every complete segment from the first counted once.
	var st state
	raw, err := os.ReadFile(filepath.Join(r.stateDir, StateFileName))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(raw, &st))
	require.Equal(t, uint64((s2.Start+SegmentSize-first)/SegmentSize), st.Ranges[0].Segments)
	require.False(t, rep.GetGap())
}
