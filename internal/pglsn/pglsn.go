// Package pglsn parses and prints PostgreSQL WAL positions (LSNs), the
// "X/Y" text PostgreSQL shows (two hexadecimal halves of a 64-bit byte
// position), as found in WAL reports from agents and in base backups'
// labels. Both halves are at most 8 hex digits; anything else is refused,
// so a position from outside can be compared as a number.
package pglsn

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// LSN is a WAL byte position.
type LSN uint64

// SegmentSize is the size of a WAL segment file of a default PostgreSQL
// build (16 MiB), the one the archive handles: the agent refuses a cluster
// initialised with another --wal-segsize, and the control plane counts and
// trims WAL in these.
const SegmentSize = 16 << 20

// SegmentStart is the first position of the segment holding l.
func (l LSN) SegmentStart() LSN { return l - l%SegmentSize }

// ErrSyntax is returned for text that is not an LSN.
var ErrSyntax = errors.New(`not a WAL position: want "X/Y" with 1-8 hex digits each`)

// Parse reads "X/Y".
func Parse(s string) (LSN, error) {
	hi, lo, ok := strings.Cut(s, "/")
	if !ok || !halfOK(hi) || !halfOK(lo) {
		return 0, fmt.Errorf("%q: %w", truncate(s), ErrSyntax)
	}
	h, err1 := strconv.ParseUint(hi, 16, 32)
	l, err2 := strconv.ParseUint(lo, 16, 32)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("%q: %w", truncate(s), ErrSyntax)
	}
	return LSN(h<<32 | l), nil
}

func halfOK(s string) bool {
	if len(s) == 0 || len(s) > 8 {
		return false
	}
	for _, c := range s {
		if !strings.ContainsRune("0123456789abcdefABCDEF", c) {
			return false
		}
	}
	return true
}

// String prints the position as PostgreSQL does: "0/3000000".
func (l LSN) String() string { return fmt.Sprintf("%X/%X", uint64(l)>>32, uint64(l)&0xffffffff) }

func truncate(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}
