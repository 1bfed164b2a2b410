package walarchive

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/forlock/fleet/internal/atomicfile"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// StateFileName is the archiver's state in the agent's state directory.
const StateFileName = "wal-archive.json"

// Range is a contiguous run of shipped WAL of one timeline.
type Range struct {
	Timeline  uint32    `json:"timeline"`
	Start     LSN       `json:"start"` // at a segment boundary
	End       LSN       `json:"end"`   // after the last byte shipped
	StartTime time.Time `json:"start_time"`
	EndTime   time.Time `json:"end_time"`
	Segments  uint64    `json:"segments"` // complete segments shipped
	Size      uint64    `json:"size"`     // their stored bytes
	Partial   uint64    `json:"partial"`  // stored bytes of the partial, 0 if none
	KeyIDs    []string  `json:"key_ids"`  // archive keys used
	Full      LSN       `json:"full"`     // end of the last complete segment
}

// state is what the archiver keeps across restarts.
type state struct {
	Ranges []Range `json:"ranges"`
	// The newest physical base backup's start, on its timeline (0: none known).
	BaseTimeline uint32 `json:"base_timeline"`
	BaseLSN      LSN    `json:"base_lsn"`
	// The partial last shipped, so an unchanged one is not shipped again.
	PartialName  string `json:"partial_name"`
	PartialStamp string `json:"partial_stamp"`
}

func loadState(dir string) (state, error) {
	raw, err := os.ReadFile(filepath.Join(dir, StateFileName))
	if errors.Is(err, fs.ErrNotExist) {
		return state{}, nil
	}
	if err != nil {
		return state{}, fmt.Errorf("WAL archive state: %w", err)
	}
	var st state
	if err := json.Unmarshal(raw, &st); err != nil {
		return state{}, fmt.Errorf("WAL archive state %s is damaged (move it away to start a new archive; a gap is reported until the next base backup): %w",
			filepath.Join(dir, StateFileName), err)
	}
	return st, nil
}

func (st *state) save(dir string) error {
	raw, err := json.Marshal(st)
	if err != nil {
		return err
	}
	if err := atomicfile.Write(filepath.Join(dir, StateFileName), raw, 0o600); err != nil {
		return fmt.Errorf("save the WAL archive state: %w", err)
	}
	return nil
}

// add records that seg was shipped up to end (the segment's end when
// complete), stored in size bytes, under keyID. A segment continuing the
// newest range of its timeline extends it; one that starts after its end
// starts a new range (the gap between them is what gap reports). Shipping
// the same segment again changes nothing but the sizes.
func (st *state) add(seg Segment, end LSN, size uint64, keyID string, now time.Time) {
	var r *Range
	if n := len(st.Ranges); n > 0 {
		last := &st.Ranges[n-1]
		if last.Timeline == seg.Timeline && seg.Start <= last.End && seg.Start >= last.Start {
			r = last
		}
	}
	if r == nil {
		st.Ranges = append(st.Ranges, Range{Timeline: seg.Timeline, Start: seg.Start, End: seg.Start, Full: seg.Start, StartTime: now})
		r = &st.Ranges[len(st.Ranges)-1]
	}
	r.End = max(r.End, end)
	if now.After(r.EndTime) {
		r.EndTime = now
	}
	if !slices.Contains(r.KeyIDs, keyID) {
		r.KeyIDs = append(r.KeyIDs, keyID)
	}
	if seg.Partial {
		r.Partial = size
		return
	}
	if seg.Start >= r.Full { // a new complete segment, not one shipped again
		r.Segments++
		r.Size += size
		r.Full = seg.Start + SegmentSize
	}
	r.Partial = 0
}

// gap reports whether the WAL since the newest base backup is broken, and
// where the contiguous WAL from the base ends. Without a known base backup
// there is nothing to be contiguous with: no gap.
func (st *state) gap() (bool, LSN) {
	if st.BaseLSN == 0 {
		return false, 0
	}
	// The range holding the base's start; for the newest range, WAL past
	// its end is WAL not shipped yet, not missing.
	last, i := len(st.Ranges)-1, -1
	for j, r := range st.Ranges {
		if r.Timeline == st.BaseTimeline && r.Start <= st.BaseLSN && (st.BaseLSN <= r.End || j == last) {
			i = j
			break
		}
	}
	if i < 0 {
		// The base backup's WAL was never shipped (archiving started late,
		// or the slot was lost before it).
		return true, st.BaseLSN
	}
	if i != len(st.Ranges)-1 {
		return true, st.Ranges[i].End // a later range: a gap or a timeline switch
	}
	return false, 0
}

// report is the WalReport of this state.
func (st *state) report(dest *forlockv1.BackupDestination) *forlockv1.WalReport {
	rep := &forlockv1.WalReport{}
	for _, r := range st.Ranges {
		n := r.Segments
		if r.Partial > 0 {
			n++
		}
		rep.Ranges = append(rep.Ranges, &forlockv1.WalRange{
			Timeline: r.Timeline, StartLsn: r.Start.String(), EndLsn: r.End.String(),
			StartTime: timestamppb.New(r.StartTime), EndTime: timestamppb.New(r.EndTime),
			Destination: dest, Segments: n, SizeBytes: r.Size + r.Partial, KeyIds: slices.Clone(r.KeyIDs),
		})
	}
	if gap, after := st.gap(); gap {
		rep.Gap, rep.GapAfterLsn = true, after.String()
	}
	if st.BaseLSN != 0 {
		rep.BaseBackupLsn = st.BaseLSN.String()
	}
	return rep
}
