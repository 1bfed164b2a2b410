package store

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"
)

// A full data disk is a state of the store, not a fault. Every write checks
// the free space of the data dir's file system (statfs) against a reserve
// before it starts, and a commit that fails with ENOSPC or EDQUOT puts the
// store in the same state: writes are refused at once with ErrDiskFull
// (the caller hears it within microseconds instead of waiting for a
// deadline), reads go on. The state clears by itself: the reserve check
// passes again, and after an ENOSPC the free space has grown past what it
// was when the write failed. Nothing has to be repaired: bbolt rolls a
// failed commit back and reloads its freelist from disk, so the next commit
// starts from the last good one.
//
// Any other error of a commit (EIO from a write or an fsync) is
// ErrWriteFailed: the file may no longer hold what the process believes,
// so the job engine stops the control plane on it, as etcd does after a
// failed fsync.

// DefaultDiskReserve is the free space the data dir must keep: below it
// writes are refused.
const DefaultDiskReserve = 64 << 20

// Disk errors; the API layer maps ErrDiskFull to ResourceExhausted.
var (
	ErrDiskFull    = errors.New("control plane data disk is full")
	ErrWriteFailed = errors.New("writing the database failed")
)

// DiskStatus is the data disk as the store sees it.
type DiskStatus struct {
	// Dir is the directory holding the database.
	Dir string
	// Free is the space available to the control plane; Reserve the space
	// it keeps free.
	Free, Reserve uint64
	// Full reports that writes are refused, since Since; Err says why.
	Full  bool
	Since time.Time
	Err   error
}

// diskGuard decides whether a write may start and classifies failed
// commits.
type diskGuard struct {
	dir     string
	reserve uint64

	mu     sync.Mutex
	full   bool
	since  time.Time
	enospc bool   // the last commit failed for lack of space
	freeAt uint64 // free space right after that failure
}

// free returns the bytes available to an unprivileged writer in the
// guard's dir.
func (g *diskGuard) free() (uint64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(g.dir, &st); err != nil {
		return 0, fmt.Errorf("statfs %s: %w", g.dir, err)
	}
	return st.Bavail * uint64(st.Bsize), nil //nolint:gosec // Bsize is a positive block size
}

// check refuses a write when the disk is full and keeps the state.
func (g *diskGuard) check() error { return g.status().Err }

func (g *diskGuard) status() DiskStatus {
	free, err := g.free()
	g.mu.Lock()
	defer g.mu.Unlock()
	st := DiskStatus{Dir: g.dir, Free: free, Reserve: g.reserve}
	if err != nil {
		// Without statfs the commit itself is the check.
		st.Full, st.Since = g.full, g.since
		return st
	}
	full := free < g.reserve || (g.enospc && free <= g.freeAt)
	if !full {
		g.full, g.enospc = false, false
		return st
	}
	if !g.full {
		g.full, g.since = true, time.Now()
	}
	st.Full, st.Since, st.Err = true, g.since, g.fullError(free, nil)
	return st
}

func (g *diskGuard) fullError(free uint64, cause error) error {
	msg := fmt.Sprintf("%s: free space in %s (%d MiB free, reserve %d MiB)", ErrDiskFull, g.dir, free>>20, g.reserve>>20)
	if cause != nil {
		return &diskFullError{msg: msg + ": " + cause.Error(), cause: cause}
	}
	return &diskFullError{msg: msg}
}

// diskFullError is ErrDiskFull with the numbers, and the ENOSPC that caused
// it if any.
type diskFullError struct {
	msg   string
	cause error
}

func (e *diskFullError) Error() string { return e.msg }

func (e *diskFullError) Is(target error) bool { return target == ErrDiskFull }

func (e *diskFullError) Unwrap() error { return e.cause }

// failed classifies the error of a commit.
func (g *diskGuard) failed(err error) error {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		free, _ := g.free()
		g.mu.Lock()
		defer g.mu.Unlock()
		if !g.full {
			g.full, g.since = true, time.Now()
		}
		g.enospc, g.freeAt = true, free
		return g.fullError(free, err)
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return fmt.Errorf("%w: %w", ErrWriteFailed, err)
	}
	return err
}

func (g *diskGuard) succeeded() {
	g.mu.Lock()
	g.full, g.enospc = false, false
	g.mu.Unlock()
}

// boltDB is the database with every write guarded and every read counted.
// Store methods call Update and View on it exactly as on a *bolt.DB.
type boltDB struct {
	*bolt.DB
	guard *diskGuard
	reads atomic.Int64
	// commit, if set, is told how long each successful commit took: from
	// the end of the transaction's function to the synced commit.
	commit func(time.Duration)
}

// View counts the read and runs it.
func (d *boltDB) View(fn func(*bolt.Tx) error) error {
	d.reads.Add(1)
	return d.DB.View(fn)
}

// Update refuses the write when the disk is full, else runs it; a failed
// commit is classified (an error returned by fn is passed on as it is).
func (d *boltDB) Update(fn func(*bolt.Tx) error) error {
	if err := d.guard.check(); err != nil {
		return err
	}
	var fnErr error
	var fnDone time.Time
	err := d.DB.Update(func(tx *bolt.Tx) error {
		fnErr = fn(tx)
		if d.commit != nil {
			fnDone = time.Now()
		}
		return fnErr
	})
	switch {
	case err == nil:
		d.guard.succeeded()
		if d.commit != nil {
			d.commit(time.Since(fnDone))
		}
		return nil
	case fnErr != nil:
		return err
	}
	return d.guard.failed(err)
}

// CheckWritable returns ErrDiskFull (with the numbers) while writes are
// refused, so a caller can fail fast before it queues work.
func (s *Store) CheckWritable() error { return s.db.guard.check() }

// Disk returns the state of the data disk.
func (s *Store) Disk() DiskStatus { return s.db.guard.status() }

// Reads counts the read transactions since Open. Tests use it to prove a
// path touches no stored data.
func (s *Store) Reads() int64 { return s.db.reads.Load() }
