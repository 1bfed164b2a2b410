package walarchive

import (
	"context"
	"errors"
	"fmt"
	"strings"

	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
	"google.golang.org/protobuf/proto"
)

// Delete carries out the WAL part of a delete_backup task (retention):
// for each range, every stored file of its timeline whose segment lies
// wholly before the range's end_lsn is removed, and the ranges the agent
// keeps are trimmed to match. A range of another node or destination, or
// with a malformed position, is refused before anything is deleted. It
// returns how many files it removed.
func (a *Archiver) Delete(ctx context.Context, nodeID string, ranges []*forlockv1.WalRange) (int, error) {
	type cut struct {
		tl  uint32
		end LSN
	}
	var cuts []cut
	for _, r := range ranges {
		if r.GetNodeId() != "" && r.GetNodeId() != nodeID {
			return 0, fmt.Errorf("WAL range of node %q: this agent is node %s", r.GetNodeId(), nodeID)
		}
		if d := r.GetDestination(); d != nil && !proto.Equal(d, a.cfg.Destination) {
			return 0, errors.New("WAL range in another destination than this agent's archive: refused")
		}
		end, err := ParseLSN(r.GetEndLsn())
		if err != nil || r.GetTimeline() == 0 {
			return 0, fmt.Errorf("WAL range: timeline %d, end %q: %w", r.GetTimeline(), r.GetEndLsn(), errors.Join(err, errors.New("invalid")))
		}
		cuts = append(cuts, cut{r.GetTimeline(), end})
	}
	n := 0
	for _, c := range cuts {
		names, err := a.cfg.Store.List(ctx, a.cfg.Prefix+TimelineDir(c.tl))
		if err != nil { // gone: none listed, nothing to delete, still trimmed
			return n, fmt.Errorf("list the WAL of timeline %d: %w", c.tl, err)
		}
		for _, name := range names {
			seg, err := ParseSegment(strings.TrimSuffix(name, encSuffix))
			if err != nil || !strings.HasSuffix(name, encSuffix) || seg.Start+SegmentSize > c.end {
				continue // history files, temporaries, and WAL still needed
			}
			if err := a.cfg.Store.Delete(ctx, StoredName(a.cfg.Prefix, c.tl, seg.Name())); err != nil {
				return n, err
			}
			n++
		}
		a.mu.Lock()
		a.st.trim(c.tl, c.end)
		err = a.st.save(a.cfg.StateDir)
		a.mu.Unlock()
		if err != nil {
			return n, err
		}
	}
	a.notify()
	return n, nil
}

// trim forgets the WAL of timeline tl before the segment holding end.
func (st *state) trim(tl uint32, end LSN) {
	keep := st.Ranges[:0]
	for _, r := range st.Ranges {
		if r.Timeline == tl {
			cut := end.segmentStart()
			if r.End <= cut {
				continue
			}
			if r.Start < cut {
				gone := uint64(cut-r.Start) / SegmentSize
				r.Segments -= min(gone, r.Segments)
				if r.Segments > 0 {
					r.Size -= r.Size / (r.Segments + gone) * gone
				}
				r.Start = cut
			}
		}
		keep = append(keep, r)
	}
	st.Ranges = keep
}
