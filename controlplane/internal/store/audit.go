package store

import (
	"crypto/ed25519"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/forlock/fleet/controlplane/internal/audit"
)

// SetAuditLog makes audited writes append their records through l, in the
// same transaction as the change. Without it (tests of other packages)
// records are dropped.
func (s *Store) SetAuditLog(l *audit.Log) { s.audit = l }

// updateAudited runs fn and appends recs in the same transaction: the
// change and its record commit together or not at all, and a record that
// cannot be written (a full disk) fails the change. Records are handed to
// the log's outputs once committed.
func (s *Store) updateAudited(recs []audit.Record, fn func(tx *bolt.Tx) error) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		if err := fn(tx); err != nil {
			return err
		}
		return s.appendAudit(tx, recs)
	})
}

func (s *Store) appendAudit(tx *bolt.Tx, recs []audit.Record) error {
	if len(recs) == 0 || s.audit == nil {
		return nil
	}
	b, err := s.audit.Append(tx, recs...)
	if err != nil {
		return err
	}
	tx.OnCommit(func() { _ = s.audit.Publish(b) }) // errors go to OnOutputError
	return nil
}

// Audit appends records that record no change of their own (a denied call,
// a failure, a read of something sensitive).
func (s *Store) Audit(recs ...audit.Record) error {
	return s.updateAudited(recs, func(*bolt.Tx) error { return nil })
}

// AuditHead returns the sequence of the newest audit record (0 for none).
func (s *Store) AuditHead() (uint64, error) {
	var seq uint64
	err := s.db.View(func(tx *bolt.Tx) error {
		h, ok, err := audit.Head(tx)
		if ok {
			seq = h.Seq
		}
		return err
	})
	return seq, err
}

// VerifyAudit walks the audit chain (audit.Verify).
func (s *Store) VerifyAudit(pub ed25519.PublicKey, outside []audit.Checkpoint) (audit.Report, error) {
	var rep audit.Report
	err := s.db.View(func(tx *bolt.Tx) error {
		rep = audit.Verify(tx, pub, outside)
		return nil
	})
	return rep, err
}

// ScanAudit calls fn for each audit record from seq from upwards until fn
// returns false.
func (s *Store) ScanAudit(from uint64, fn func(audit.Entry) bool) error {
	return s.db.View(func(tx *bolt.Tx) error { return audit.Scan(tx, from, fn) })
}

// PruneAudit deletes audit records older than before (audit.Log.Prune).
func (s *Store) PruneAudit(before time.Time) (int, error) {
	var n int
	if s.audit == nil {
		return 0, nil
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		var err error
		n, err = s.audit.Prune(tx, before)
		return err
	})
	return n, err
}
