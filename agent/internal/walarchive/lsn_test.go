package walarchive

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/forlock/fleet/internal/keys"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

func TestParseLSN(t *testing.T) {
	l, err := ParseLSN("1/3000028")
	require.NoError(t, err)
	require.Equal(t, LSN(1<<32|0x3000028), l)
	require.Equal(t, "1/3000028", l.String())
	for _, bad := range []string{"", "0", "/1", "1/", "x/1", "1/2/3", "123456789/0", "-1/0"} {
		_, err := ParseLSN(bad)
		require.Error(t, err, bad)
	}
}

// TestParseSegmentRefusesTricks: only a real segment name reaches a path.
func TestParseSegmentRefusesTricks(t *testing.T) {
	s, err := ParseSegment("000000020000000100000003.partial")
	require.NoError(t, err)
	require.Equal(t, Segment{Timeline: 2, Start: LSN(1<<32 | 3*SegmentSize), Partial: true}, s)
	require.Equal(t, "000000020000000100000003.partial", s.Name())
	require.Equal(t, "wal/n/00000002/000000020000000100000003.zst.enc", StoredName("wal/n/", 2, SegmentAt(2, s.Start+5).Name()))
	for _, bad := range []string{
		"../000000010000000000000001", "000000010000000000000001/../../etc/passwd", "/000000010000000000000001",
		"000000010000000000000001.zst.enc", "00000001000000000000001", "000000010000000000000100", // low half past 16 MiB segments
		"000000000000000000000001", "00000001000000000000000a", "000000010000000000000001.partial.x", "00000002.history",
	} {
		_, err := ParseSegment(bad)
		require.Error(t, err, bad)
	}
	require.True(t, isHistory("00000002.history"))
	require.False(t, isHistory("../00000002.history"))
}

// TestRangesAndGap: ranges grow by segment, a re-shipped segment counts
// once, a jump starts a new range and is a gap after the base backup, and
// a base backup after the jump heals it.
func TestRangesAndGap(t *testing.T) {
	now := time.Unix(1_700_000_000, 0).UTC()
	seg := func(n int, partial bool) Segment {
		return Segment{Timeline: 1, Start: LSN(n * SegmentSize), Partial: partial}
	}
	var st state
	st.add(seg(2, true), 2*SegmentSize+100, 10, "k1", now)
	st.add(seg(2, false), 3*SegmentSize, 1000, "k1", now)
	st.add(seg(2, false), 3*SegmentSize, 1000, "k1", now) // again, after a restart
	st.add(seg(3, true), 3*SegmentSize+50, 20, "k2", now)
	require.Len(t, st.Ranges, 1)
	r := st.Ranges[0]
	require.Equal(t, Range{Timeline: 1, Start: 2 * SegmentSize, End: 3*SegmentSize + 50, StartTime: now, EndTime: now,
		Segments: 1, Size: 1000, Partial: 20, KeyIDs: []string{"k1", "k2"}, Full: 3 * SegmentSize}, r)
	st.BaseTimeline, st.BaseLSN = 1, 2*SegmentSize+40
	gap, _ := st.gap()
	require.False(t, gap)
	st.BaseLSN = 3*SegmentSize + 60 // past the newest range's end: not shipped yet
	gap, _ = st.gap()
	require.False(t, gap)
	st.BaseLSN = SegmentSize // before the archive began
	gap, after := st.gap()
	require.True(t, gap)
	require.Equal(t, LSN(SegmentSize), after)
	st.BaseLSN = 2*SegmentSize + 40

	st.add(seg(7, false), 8*SegmentSize, 1000, "k2", now) // the slot was lost in between
	require.Len(t, st.Ranges, 2)
	gap, after = st.gap()
	require.True(t, gap)
	require.Equal(t, LSN(3*SegmentSize+50), after)
	rep := st.report(nil)
	require.True(t, rep.GetGap())
	require.Equal(t, "0/3000032", rep.GetGapAfterLsn())
	require.Equal(t, uint64(2), rep.GetRanges()[0].GetSegments(), "the complete one and the partial")

	st.BaseLSN = 7*SegmentSize + 40 // a base backup after the jump
	gap, _ = st.gap()
	require.False(t, gap)
	st.add(Segment{Timeline: 2, Start: 8 * SegmentSize}, 9*SegmentSize, 1, "k2", now) // a new timeline without a base backup
	gap, _ = st.gap()
	require.True(t, gap)
}

// TestKeyStore: a key is kept 0600, survives a reopen, an older one does
// not replace a newer one, and a file others can read is refused.
func TestKeyStore(t *testing.T) {
	dir := t.TempDir()
	ks, err := OpenKeyStore(dir)
	require.NoError(t, err)
	_, err = ks.Current()
	require.ErrorIs(t, err, ErrNoKey)
	k1, _ := keys.NewDataKey()
	k0, _ := keys.NewDataKey()
	now := time.Now()
	require.NoError(t, ks.Set(&forlockv1.ArchiveKey{KeyId: "archive:n:1", PlainKey: k1, CreatedAt: timestamppb.New(now)}))
	require.NoError(t, ks.Set(&forlockv1.ArchiveKey{KeyId: "archive:n:0", PlainKey: k0, CreatedAt: timestamppb.New(now.Add(-time.Hour))}))
	require.Error(t, ks.Set(&forlockv1.ArchiveKey{KeyId: "archive:n:2", PlainKey: []byte("short"), CreatedAt: timestamppb.New(now)}))
	fi, err := os.Stat(filepath.Join(dir, KeyFileName))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())

	again, err := OpenKeyStore(dir)
	require.NoError(t, err)
	cur, err := again.Current()
	require.NoError(t, err)
	require.Equal(t, "archive:n:1", cur.KeyID())
	w, err := cur.Wrap(t.Context(), k0)
	require.NoError(t, err)
	plain, err := keys.NewNamed("archive:n:1", k1)
	require.NoError(t, err)
	got, err := plain.Unwrap(t.Context(), "archive:n:1", w)
	require.NoError(t, err)
	require.Equal(t, k0, got, "the reopened key is the one sent")

	require.NoError(t, os.Chmod(filepath.Join(dir, KeyFileName), 0o644))
	_, err = OpenKeyStore(dir)
	require.ErrorIs(t, err, keys.ErrInsecureKeyFile)
}

// TestTrim: retention drops whole segments before the cut and keeps the rest.
func TestTrim(t *testing.T) {
	st := state{Ranges: []Range{
		{Timeline: 1, Start: 0, End: 2 * SegmentSize, Segments: 2, Size: 200, Full: 2 * SegmentSize},
		{Timeline: 1, Start: 5 * SegmentSize, End: 9*SegmentSize + 7, Segments: 4, Size: 400, Full: 9 * SegmentSize},
		{Timeline: 2, Start: 9 * SegmentSize, End: 10 * SegmentSize, Segments: 1, Size: 100, Full: 10 * SegmentSize},
	}}
	st.trim(1, 7*SegmentSize+5)
	require.Len(t, st.Ranges, 2)
	require.Equal(t, Range{Timeline: 1, Start: 7 * SegmentSize, End: 9*SegmentSize + 7, Segments: 2, Size: 200, Full: 9 * SegmentSize}, st.Ranges[0])
	require.Equal(t, uint32(2), st.Ranges[1].Timeline)
}
