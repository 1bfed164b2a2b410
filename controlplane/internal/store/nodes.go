package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"time"

	bolt "go.etcd.io/bbolt"
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
	CertSerial     string            `json:"cert_serial"`
	CertNotAfter   time.Time         `json:"cert_not_after"`
	AgentVersion   string            `json:"agent_version,omitempty"`
}

// Issued describes a certificate issued during a store transaction.
type Issued struct {
	Serial   string
	NotAfter time.Time
}

// EnrollParams is an enrollment request after validation.
type EnrollParams struct {
	TokenID   string
	TokenHash []byte
	Name      string
	Now       time.Time
	// NewID returns a fresh node ID for a name not seen before.
	NewID func() string
}

// Enroll consumes one use of the join token and creates the node, or, for a
// known name, keeps its ID and history and moves it to a new identity epoch.
// issue is called inside the transaction with the node as it will be stored
// and must sign its certificate; if anything fails nothing is written and the
// token keeps its use. Enrollments are serialised by bbolt's single writer, so
// two callers racing for a token's last use cannot both succeed.
func (s *Store) Enroll(p EnrollParams, issue func(n Node) (Issued, error)) (Node, error) {
	var out Node
	err := s.db.Update(func(tx *bolt.Tx) error {
		tok, err := useToken(tx, p.TokenID, p.TokenHash, p.Now)
		if err != nil {
			return err
		}
		names := tx.Bucket(bucketNodeNames)
		nodes := tx.Bucket(bucketNodes)
		var n Node
		if id := names.Get([]byte(p.Name)); id != nil {
			if err := getJSON(nodes, string(id), &n); err != nil {
				return fmt.Errorf("node %s named %q: %w", id, p.Name, err)
			}
		} else {
			n = Node{ID: p.NewID(), Name: p.Name, EnrolledAt: p.Now, State: StateEnrolled, StateChangedAt: p.Now}
		}
		n.Epoch++
		n.Enrollments++
		n.LastEnrolledAt = p.Now
		if len(tok.Labels) > 0 {
			if n.Labels == nil {
				n.Labels = map[string]string{}
			}
			maps.Copy(n.Labels, tok.Labels)
		}
		iss, err := issue(n)
		if err != nil {
			return err
		}
		n.CertSerial, n.CertNotAfter = iss.Serial, iss.NotAfter
		if err := putJSON(nodes, n.ID, n); err != nil {
			return err
		}
		if err := names.Put([]byte(n.Name), []byte(n.ID)); err != nil {
			return err
		}
		out = n
		return putJSON(tx.Bucket(bucketTokens), tok.ID, tok)
	})
	return out, err
}

// RecordCertificate records a certificate renewed for the node at epoch.
func (s *Store) RecordCertificate(id string, epoch uint64, iss Issued) (Node, error) {
	var n Node
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketNodes)
		if err := getJSON(b, id, &n); err != nil {
			return err
		}
		if n.Epoch != epoch {
			return ErrIdentityRetired
		}
		n.CertSerial, n.CertNotAfter = iss.Serial, iss.NotAfter
		return putJSON(b, id, n)
	})
	return n, err
}

// DeleteNode removes a node and its name.
func (s *Store) DeleteNode(id string) (Node, error) {
	var n Node
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketNodes)
		if err := getJSON(b, id, &n); err != nil {
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
