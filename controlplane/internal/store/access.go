package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/forlock/fleet/controlplane/internal/access"
	"github.com/forlock/fleet/controlplane/internal/audit"
)

// Identity buckets:
//
//	identities/
//	  <name>  -> JSON access.Identity (holds the SHA-256 of the secret, never the secret)
//	identity_hashes/
//	  <SHA-256 of the secret> -> <name>
var (
	bucketIdentities     = []byte("identities")
	bucketIdentityHashes = []byte("identity_hashes")
)

// ErrExists reports a name that is taken.
var ErrExists = errors.New("already exists")

// CreateIdentity stores a new identity (and its audit records).
func (s *Store) CreateIdentity(id access.Identity, recs ...audit.Record) error {
	return s.updateAudited(recs, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketIdentities)
		if b.Get([]byte(id.Name)) != nil {
			return fmt.Errorf("%w: identity %s: choose another name, or rotate its secret with forlockctl access rotate %s", ErrExists, id.Name, id.Name)
		}
		if err := putJSON(b, id.Name, id); err != nil {
			return err
		}
		return tx.Bucket(bucketIdentityHashes).Put(id.Hash, []byte(id.Name))
	})
}

// IdentityByHash returns the identity whose secret has this hash, revoked
// or not (the caller checks Usable).
func (s *Store) IdentityByHash(hash []byte) (access.Identity, error) {
	var id access.Identity
	err := s.db.View(func(tx *bolt.Tx) error {
		name := tx.Bucket(bucketIdentityHashes).Get(hash)
		if name == nil {
			return access.ErrUnknown
		}
		return getIdentity(tx, string(name), &id)
	})
	return id, err
}

func getIdentity(tx *bolt.Tx, name string, id *access.Identity) error {
	v := tx.Bucket(bucketIdentities).Get([]byte(name))
	if v == nil {
		return fmt.Errorf("%w: identity %s: see forlockctl access list", ErrNotFound, name)
	}
	return json.Unmarshal(v, id)
}

// Identities returns every identity, by name.
func (s *Store) Identities() ([]access.Identity, error) {
	var out []access.Identity
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketIdentities).ForEach(func(_, v []byte) error {
			var id access.Identity
			if err := json.Unmarshal(v, &id); err != nil {
				return err
			}
			out = append(out, id)
			return nil
		})
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, err
}

// RevokeIdentity marks an identity revoked; its secret stops working at
// the next call. Revoking twice keeps the first time.
func (s *Store) RevokeIdentity(name string, now time.Time, recs ...audit.Record) (access.Identity, error) {
	var id access.Identity
	err := s.updateAudited(recs, func(tx *bolt.Tx) error {
		if err := getIdentity(tx, name, &id); err != nil {
			return err
		}
		if id.RevokedAt.IsZero() {
			id.RevokedAt = now
		}
		if err := tx.Bucket(bucketIdentityHashes).Delete(id.Hash); err != nil {
			return err
		}
		return putJSON(tx.Bucket(bucketIdentities), name, id)
	})
	return id, err
}

// RotateIdentity replaces an identity's secret hash (the old secret stops
// working at once) and, when expires is not zero, its expiry. A revoked
// identity cannot be rotated: make a new one.
func (s *Store) RotateIdentity(name string, hash []byte, expires, now time.Time, recs ...audit.Record) (access.Identity, error) {
	var id access.Identity
	err := s.updateAudited(recs, func(tx *bolt.Tx) error {
		if err := getIdentity(tx, name, &id); err != nil {
			return err
		}
		if !id.RevokedAt.IsZero() {
			return fmt.Errorf("%w: identity %s is revoked: create a new identity", access.ErrRevoked, name)
		}
		hashes := tx.Bucket(bucketIdentityHashes)
		if err := hashes.Delete(id.Hash); err != nil {
			return err
		}
		id.Hash, id.RotatedAt = hash, now
		if !expires.IsZero() {
			id.ExpiresAt = expires
		}
		if err := hashes.Put(hash, []byte(name)); err != nil {
			return err
		}
		return putJSON(tx.Bucket(bucketIdentities), name, id)
	})
	return id, err
}
