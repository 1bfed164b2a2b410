package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/forlock/fleet/controlplane/internal/audit"

	"github.com/forlock/fleet/controlplane/internal/enroll"
)

// State is a node's reachability as last recorded.
type State string

// Node states. They only describe; nothing acts on them.
const (
	StateEnrolled    State = "enrolled"
	StateOnline      State = "online"
	StateUnreachable State = "unreachable"
	StateOffline     State = "offline"
)

// ErrIdentityRetired reports a certificate of an older enrollment epoch.
var ErrIdentityRetired = errors.New("node identity retired by a later enrollment")

// ErrNodeNotFound reports a node that is not registered: one an operator
// named that never was, or one removed meanwhile. It is also ErrNotFound.
var ErrNodeNotFound = fmt.Errorf("node %w", ErrNotFound)

// NodeNotFound returns ErrNodeNotFound for the node named by ref (a name or
// an ID), with a message that says where to look.
func NodeNotFound(ref string) error { return &nodeNotFoundError{ref: ref} }

type nodeNotFoundError struct{ ref string }

func (e *nodeNotFoundError) Error() string {
	return fmt.Sprintf("node %q not found: see 'forlockctl nodes list'", e.ref)
}

func (e *nodeNotFoundError) Unwrap() error { return ErrNodeNotFound }

// getNode reads a node record; a missing one is NodeNotFound.
func getNode(b *bolt.Bucket, id string, n *Node) error {
	if err := getJSON(b, id, n); err != nil {
		if errors.Is(err, ErrNotFound) {
			return NodeNotFound(id)
		}
		return err
	}
	return nil
}

// Node is a stored node record.
type Node struct {
	ID             string            `json:"id"`
	Name           string            `json:"name"`
	Labels         map[string]string `json:"labels,omitempty"`
	Epoch          uint64            `json:"epoch"`
	State          State             `json:"state"`
	StateChangedAt time.Time         `json:"state_changed_at"`
	EnrolledAt     time.Time         `json:"enrolled_at"`
	LastEnrolledAt time.Time         `json:"last_enrolled_at"`
	Enrollments    uint32            `json:"enrollments"`
	// CertSerial is the newest certificate issued to the node; CertNotAfter
	// its expiry; KeyID (enroll.KeyID) its public key, the node's registered
	// key ("" for a node enrolled before keys were recorded, until its next
	// renewal).
	CertSerial   string    `json:"cert_serial"`
	CertNotAfter time.Time `json:"cert_not_after"`
	KeyID        string    `json:"key_id,omitempty"`
	// PrevCertSerial is the certificate before the newest one, valid until
	// PrevCertUntil (enroll.Certs).
	PrevCertSerial string    `json:"prev_cert_serial,omitempty"`
	PrevCertUntil  time.Time `json:"prev_cert_until,omitzero"`
	// QuarantinedAt is set when a superseded certificate tried to renew
	// (enroll: quarantine); zero when the node is not quarantined.
	QuarantinedAt    time.Time `json:"quarantined_at,omitzero"`
	QuarantineReason string    `json:"quarantine_reason,omitempty"`
	AgentVersion     string    `json:"agent_version,omitempty"`
}

// Issued describes a certificate issued during a store transaction.
type Issued struct {
	Serial   string
	NotAfter time.Time
	// KeyID is enroll.KeyID of the certificate's public key.
	KeyID string
}

// Certs returns the certificates that may speak for the node.
func (n *Node) Certs() enroll.Certs {
	return enroll.Certs{Newest: n.CertSerial, Previous: n.PrevCertSerial, PreviousUntil: n.PrevCertUntil}
}

// Quarantined reports whether the node is quarantined.
func (n *Node) Quarantined() bool { return !n.QuarantinedAt.IsZero() }

// Renewal is a certificate renewed for a node.
type Renewal struct {
	ID    string
	Epoch uint64
	// From is the serial of the certificate that authenticated the call.
	From   string
	Issued Issued
	Now    time.Time
	Grace  time.Duration
}

// RecordCertificate records a certificate renewed for a node, if the
// certificate that asked may still speak for the node (enroll.Certs.Check):
// the newest one, or the previous one within its grace. The node's
// registered key becomes the renewed certificate's key.
func (s *Store) RecordCertificate(r Renewal) (Node, error) {
	var n Node
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketNodes)
		if err := getNode(b, r.ID, &n); err != nil {
			return err
		}
		switch {
		case n.Epoch != r.Epoch:
			return ErrIdentityRetired
		case n.Quarantined():
			return enroll.ErrQuarantined
		}
		certs := n.Certs()
		if err := certs.Check(r.From, r.Now); err != nil {
			return err
		}
		certs = certs.Renewed(r.From, r.Issued.Serial, r.Now, r.Grace)
		n.setCerts(certs)
		n.CertNotAfter, n.KeyID = r.Issued.NotAfter, r.Issued.KeyID
		return putJSON(b, r.ID, n)
	})
	return n, err
}

func (n *Node) setCerts(c enroll.Certs) {
	n.CertSerial, n.PrevCertSerial, n.PrevCertUntil = c.Newest, c.Previous, c.PreviousUntil
}

// Quarantine marks a node quarantined: every certificate of it is refused
// until a --for-node token enrolls it again. An already quarantined node
// keeps its first reason.
func (s *Store) Quarantine(id, reason string, now time.Time) (Node, error) {
	var n Node
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketNodes)
		if err := getNode(b, id, &n); err != nil {
			return err
		}
		if n.Quarantined() {
			return nil
		}
		n.QuarantinedAt, n.QuarantineReason = now, reason
		return putJSON(b, id, n)
	})
	return n, err
}

// DeleteNode removes a node and its name (and appends its audit records).
func (s *Store) DeleteNode(id string, recs ...audit.Record) (Node, error) {
	var n Node
	err := s.updateAudited(recs, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketNodes)
		if err := getNode(b, id, &n); err != nil {
			return err
		}
		if err := b.Delete([]byte(id)); err != nil {
			return err
		}
		if rb := tx.Bucket(bucketReleases); rb.Bucket([]byte(id)) != nil {
			if err := rb.DeleteBucket([]byte(id)); err != nil {
				return err
			}
		}
		if err := tx.Bucket(bucketNodeCerts).Delete([]byte(id)); err != nil {
			return err
		}
		return tx.Bucket(bucketNodeNames).Delete([]byte(n.Name))
	})
	return n, err
}

// StateChange is one node's new state, for SaveStates.
type StateChange struct {
	ID           string
	State        State
	At           time.Time
	AgentVersion string
}

// SaveStates writes a batch of state changes in one transaction. Changes for
// nodes that no longer exist are dropped.
func (s *Store) SaveStates(changes []StateChange) error {
	if len(changes) == 0 {
		return nil
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketNodes)
		for _, c := range changes {
			var n Node
			if err := getJSON(b, c.ID, &n); err != nil {
				if errors.Is(err, ErrNotFound) {
					continue
				}
				return err
			}
			n.State, n.StateChangedAt = c.State, c.At
			if c.AgentVersion != "" {
				n.AgentVersion = c.AgentVersion
			}
			if err := putJSON(b, c.ID, n); err != nil {
				return err
			}
		}
		return nil
	})
}

// Nodes returns every stored node.
func (s *Store) Nodes() ([]Node, error) {
	var out []Node
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketNodes).ForEach(func(k, v []byte) error {
			var n Node
			if err := json.Unmarshal(v, &n); err != nil {
				return fmt.Errorf("decode node %s: %w", k, err)
			}
			out = append(out, n)
			return nil
		})
	})
	return out, err
}
