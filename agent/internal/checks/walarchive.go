package checks

import (
	"context"
	"fmt"
	"time"
)

// WalWarnAfter is how long the WAL archive may fail to ship before its
// check says WARN: a partial segment older than this at the destination is
// that much RPO lost if the node goes.
const WalWarnAfter = time.Minute

// WalState is what the wal_archive check judges.
type WalState struct {
	// Streaming: pg_receivewal runs.
	Streaming bool
	// Error is the archiver's last error, for people.
	Error string
	// Gap and GapAfter: the WAL since the newest base backup is broken
	// after this position.
	Gap      bool
	GapAfter string
	// FailingSince is when shipping began to fail (zero: it does not).
	FailingSince time.Time
}

// WalArchive is the check of the continuous WAL archive.
type WalArchive struct {
	// Read returns the archive's state; ok false means archiving has not
	// started (no archive key yet).
	Read func() (s WalState, ok bool)
}

// Name is "wal_archive".
func (WalArchive) Name() string { return "wal_archive" }

// Run reads and judges the archive.
func (w WalArchive) Run(_ context.Context) Result {
	s, ok := w.Read()
	if !ok {
		return Result{Name: "wal_archive", Status: Unknown, Summary: "WAL archiving has not started: no archive key from the control plane yet"}
	}
	return EvaluateWal(s, time.Now()) // tests call EvaluateWal with their clock
}

// EvaluateWal judges a WAL archive: CRITICAL when there is a gap since the
// newest base backup (point-in-time restore cannot cross it; a new physical
// base backup heals it), WARN when not streaming or when shipping has been
// failing for WalWarnAfter, else OK.
func EvaluateWal(s WalState, now time.Time) Result {
	r := Result{Name: "wal_archive"}
	switch {
	case s.Gap:
		r.Status = Critical
		r.Summary = fmt.Sprintf("gap in the WAL archive after %s: point-in-time restore cannot reach past it until a new physical base backup", s.GapAfter)
	case !s.Streaming:
		r.Status = Warn
		r.Summary = "not streaming: " + s.Error
	case !s.FailingSince.IsZero() && now.Sub(s.FailingSince) >= WalWarnAfter:
		r.Status = Warn
		r.Summary = fmt.Sprintf("cannot ship WAL for %s (it stays in the spool): %s", now.Sub(s.FailingSince).Round(time.Second), s.Error)
	default:
		r.Status = OK
		r.Summary = "streaming, contiguous since the newest base backup"
	}
	return r
}
