package walarchive

import (
	"fmt"
	"regexp"
	"strconv"

	"github.com/forlock/fleet/internal/pglsn"
)

// SegmentSize is the WAL segment size of a default PostgreSQL build (16 MiB);
// a cluster initialised with another --wal-segsize is refused at start.
const SegmentSize = pglsn.SegmentSize

// LSN is a WAL position: internal/pglsn's, with the segment arithmetic of
// the archive.
type LSN pglsn.LSN

// ParseLSN parses PostgreSQL's "X/Y" form (pglsn.Parse).
func ParseLSN(s string) (LSN, error) {
	l, err := pglsn.Parse(s)
	return LSN(l), err
}

// String formats as PostgreSQL does, e.g. "0/3000028".
func (l LSN) String() string { return pglsn.LSN(l).String() }

// segmentStart is the first position of the segment holding l.
func (l LSN) segmentStart() LSN { return LSN(pglsn.LSN(l).SegmentStart()) }

// segmentRe is a WAL segment file name: timeline, then the segment number
// split in two 8-digit halves (the low half below 0x100 for 16 MiB
// segments), optionally ".partial" while it fills.
var (
	segmentRe = regexp.MustCompile(`^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})(\.partial)?$`)
	historyRe = regexp.MustCompile(`^([0-9A-F]{8})\.history$`)
)

// Segment is one WAL segment file name, parsed.
type Segment struct {
	Timeline uint32
	Start    LSN  // position of its first byte
	Partial  bool // the ".partial" form
}

// ParseSegment parses and checks a segment file name; anything else (a
// path, a history file, a name of another segment size) is an error.
func ParseSegment(name string) (Segment, error) {
	m := segmentRe.FindStringSubmatch(name)
	if m == nil {
		return Segment{}, fmt.Errorf("%q is not a WAL segment file name", name)
	}
	tl, _ := strconv.ParseUint(m[1], 16, 32)
	hi, _ := strconv.ParseUint(m[2], 16, 32)
	lo, _ := strconv.ParseUint(m[3], 16, 32)
	if tl == 0 || lo >= 1<<32/SegmentSize {
		return Segment{}, fmt.Errorf("%q is not a WAL segment file name of 16 MiB segments", name)
	}
	return Segment{Timeline: uint32(tl), Start: LSN(hi<<32 | lo*SegmentSize), Partial: m[4] != ""}, nil
}

// Name is the segment's file name (with ".partial" when Partial).
func (s Segment) Name() string {
	n := fmt.Sprintf("%08X%08X%08X", s.Timeline, uint64(s.Start)>>32, (uint64(s.Start)&0xffffffff)/SegmentSize)
	if s.Partial {
		n += ".partial"
	}
	return n
}

// SegmentAt is the segment of timeline tl holding l.
func SegmentAt(tl uint32, l LSN) Segment { return Segment{Timeline: tl, Start: l.segmentStart()} }

// isHistory reports whether name is a timeline history file, e.g.
// "00000002.history".
func isHistory(name string) bool { return historyRe.MatchString(name) }

// TimelineDir is the directory of a timeline's files under a node's WAL
// prefix: 8 hex digits.
func TimelineDir(tl uint32) string { return fmt.Sprintf("%08X", tl) }
