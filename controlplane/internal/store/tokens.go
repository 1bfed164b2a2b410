package store

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/forlock/fleet/controlplane/internal/audit"
)

// JoinToken is a stored join token. Hash is the SHA-256 of the secret.
type JoinToken struct {
	ID          string            `json:"id"`
	Hash        []byte            `json:"hash"`
	Description string            `json:"description,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	CreatedAt   time.Time         `json:"created_at"`
	ExpiresAt   time.Time         `json:"expires_at"`
	MaxUses     uint32            `json:"max_uses"`
	Uses        uint32            `json:"uses"`
	RevokedAt   time.Time         `json:"revoked_at,omitzero"`
	// ForNodeName and ForNodeID name the node whose host this token
	// replaces (forlockctl tokens create --for-node); empty for a token
	// that enrolls new nodes.
	ForNodeName string `json:"for_node,omitempty"`
	ForNodeID   string `json:"for_node_id,omitempty"`
}

// Usable reports why the token cannot be used at now, or nil if it can.
func (t *JoinToken) Usable(now time.Time) error {
	switch {
	case !t.RevokedAt.IsZero():
		return ErrTokenRevoked
	case !now.Before(t.ExpiresAt):
		return ErrTokenExpired
	case t.Uses >= t.MaxUses:
		return ErrTokenUsedUp
	}
	return nil
}

// CreateToken stores a new join token (and its audit records).
func (s *Store) CreateToken(t JoinToken, recs ...audit.Record) error {
	return s.updateAudited(recs, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketTokens)
		if b.Get([]byte(t.ID)) != nil {
			return fmt.Errorf("join token %s exists", t.ID)
		}
		return putJSON(b, t.ID, t)
	})
}

// ListTokens returns all join tokens, newest first.
func (s *Store) ListTokens() ([]JoinToken, error) {
	var out []JoinToken
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketTokens).ForEach(func(_, v []byte) error {
			var t JoinToken
			if err := json.Unmarshal(v, &t); err != nil {
				return fmt.Errorf("decode join token: %w", err)
			}
			out = append(out, t)
			return nil
		})
	})
	sort.Slice(out, func(i, j int) bool { return out[i].CreatedAt.After(out[j].CreatedAt) })
	return out, err
}

// RevokeToken marks a join token revoked (and appends its audit records).
func (s *Store) RevokeToken(id string, now time.Time, recs ...audit.Record) (JoinToken, error) {
	var t JoinToken
	err := s.updateAudited(recs, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketTokens)
		if err := getJSON(b, id, &t); err != nil {
			return err
		}
		if !t.RevokedAt.IsZero() {
			return ErrAlreadyRevoked
		}
		t.RevokedAt = now
		return putJSON(b, id, t)
	})
	return t, err
}

// CheckJoinToken returns ErrTokenUnknown unless a join token with this ID
// and secret hash exists, whatever its state. It only reads: a wrong token
// never waits for or takes the database's single writer.
func (s *Store) CheckJoinToken(id string, hash []byte) error {
	return s.db.View(func(tx *bolt.Tx) error {
		var t JoinToken
		if err := getJSON(tx.Bucket(bucketTokens), id, &t); err != nil {
			if errors.Is(err, ErrNotFound) {
				return ErrTokenUnknown
			}
			return err
		}
		if subtle.ConstantTimeCompare(t.Hash, hash) != 1 {
			return ErrTokenUnknown
		}
		return nil
	})
}

func putJSON(b *bolt.Bucket, key string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s: %w", key, err)
	}
	return b.Put([]byte(key), data)
}

func getJSON(b *bolt.Bucket, key string, v any) error {
	data := b.Get([]byte(key))
	if data == nil {
		return ErrNotFound
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("decode %s: %w", key, err)
	}
	return nil
}
