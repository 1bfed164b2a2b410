package walarchive

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// A range's end time is when the server had written no WAL past what is
// archived, not when the file was shipped: a partial shipped while the
// receiver lags the server covers only the commits before the last sample
// at or below its end.
func TestArchivedAtIsWhenTheServerHadWrittenNoMore(t *testing.T) {
	t0 := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	a := &Archiver{written: []written{
		{at: t0, lsn: 0x1000},
		{at: t0.Add(time.Second), lsn: 0x2000},
		{at: t0.Add(2 * time.Second), lsn: 0x3000},
	}}
	require.True(t, a.archivedAt(0xfff).IsZero(), "behind every sample: unknown")
	require.Equal(t, t0, a.archivedAt(0x1000))
	require.Equal(t, t0.Add(time.Second), a.archivedAt(0x2fff), "the receiver lags: the commits up to the second sample only")
	require.Equal(t, t0.Add(2*time.Second), a.archivedAt(0x3000), "caught up")
	require.Equal(t, t0.Add(2*time.Second), a.archivedAt(0x9000))

	// The end time never goes back, whatever order the ships come in.
	var st state
	seg := Segment{Timeline: 1, Start: 0, Partial: true}
	st.add(seg, 0x3000, 10, "k", t0.Add(2*time.Second))
	st.add(seg, 0x3000, 10, "k", t0.Add(time.Second))
	require.Equal(t, t0.Add(2*time.Second), st.Ranges[0].EndTime)
}

func TestFilledIn(t *testing.T) {
	seg := Segment{Timeline: 1, Start: 3 * SegmentSize, Partial: true}
	require.Equal(t, int64(0x100), filledIn(seg, 3*SegmentSize+0x100, true))
	require.Equal(t, int64(-1), filledIn(seg, 3*SegmentSize+0x100, false), "no receiver: read the whole file")
	require.Equal(t, int64(-1), filledIn(seg, 2*SegmentSize, true), "another segment")
	require.Equal(t, int64(-1), filledIn(seg, 4*SegmentSize+1, true), "past it")
	require.Equal(t, int64(SegmentSize), filledIn(seg, 4*SegmentSize, true))
}
