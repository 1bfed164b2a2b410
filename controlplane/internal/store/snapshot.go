package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/forlock/fleet/controlplane/internal/enroll"
)

// keyRestored in meta/ holds the JSON RestoredFrom of a database restored
// from a control-plane snapshot (controlplane/internal/snapshot).
var keyRestored = []byte("restored_from")

// ErrNotAdoptable means a certificate may not become its node's live
// certificate after a restore.
var ErrNotAdoptable = errors.New("certificate not adoptable")

// RestoredFrom records that the database was restored from a snapshot.
type RestoredFrom struct {
	// TakenAt is when the snapshot read the database.
	TakenAt time.Time `json:"taken_at"`
	// RestoredAt is when the restore ran.
	RestoredAt time.Time `json:"restored_at"`
	// UnknownTasks counts the tasks in flight at TakenAt, marked unknown.
	UnknownTasks int `json:"unknown_tasks"`
}

// SnapshotView calls fn inside one read transaction with the size of a copy
// of the whole database and the transaction, which writes that copy
// (bolt.Tx.WriteTo): a consistent copy while writers go on.
func (s *Store) SnapshotView(fn func(size int64, copy io.WriterTo) error) error {
	return s.db.View(func(tx *bolt.Tx) error { return fn(tx.Size(), tx) })
}

// SetRestored records that the database was restored from a snapshot.
func (s *Store) SetRestored(r RestoredFrom) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(keyRestored, b) })
}

// Restored returns the restore record; ok is false for a database never
// restored from a snapshot.
func (s *Store) Restored() (r RestoredFrom, ok bool, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketMeta).Get(keyRestored)
		if v == nil {
			return nil
		}
		ok = true
		if err := json.Unmarshal(v, &r); err != nil {
			return fmt.Errorf("decode restore record: %w", err)
		}
		return nil
	})
	return r, ok, err
}

// Adoption is a certificate presented after a restore that the registry
// does not know: renewed, or issued by a re-enrollment, after the snapshot.
type Adoption struct {
	ID       string
	Epoch    uint64
	Serial   string
	NotAfter time.Time
	// KeyID is enroll.KeyID of the certificate's public key.
	KeyID string
}

// AdoptCertificate makes a certificate the node's live one if it names the
// node's recorded epoch or a later one, carries the node's registered key
// and expires after the live one (so it was issued after it: a certificate
// an adoption replaced never comes back); a quarantined node adopts nothing. Certificates recorded before it
// stop speaking for the node.
func (s *Store) AdoptCertificate(a Adoption) (Node, error) {
	var n Node
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketNodes)
		if err := getNode(b, a.ID, &n); err != nil {
			return err
		}
		switch {
		case n.Quarantined():
			return enroll.ErrQuarantined
		case a.Epoch < n.Epoch:
			return fmt.Errorf("%w: epoch %d is below the node's %d", ErrNotAdoptable, a.Epoch, n.Epoch)
		case n.KeyID == "" || n.KeyID != a.KeyID:
			return fmt.Errorf("%w: its public key is not the node's registered key", ErrNotAdoptable)
		case !a.NotAfter.After(n.CertNotAfter):
			// Older than the live certificate: one the adopted one replaced.
			return fmt.Errorf("%w: it is older than the node's live certificate", ErrNotAdoptable)
		}
		n.Epoch = a.Epoch
		n.setCerts(enroll.Certs{Newest: a.Serial})
		n.CertNotAfter = a.NotAfter
		return putJSON(b, a.ID, n)
	})
	return n, err
}
