package store

import (
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Archive key bucket (made on open; no schema change):
//
//	archive_keys/
//	  <node-id>/
//	    <key-id>        -> JSON ArchiveKey: the key wrapped by the control plane's
//	                       key-encryption key, never the plain key (key IDs sort by time)
//
// A node's newest key is its current one. A key is kept while a cataloged
// WAL range names it (PruneArchiveKeys), so every archived WAL file stays
// decryptable by a restore.
var bucketArchiveKeys = []byte("archive_keys")

// ArchiveKey is one node's WAL archive key as stored: wrapped.
type ArchiveKey struct {
	NodeID string `json:"node_id"`
	KeyID  string `json:"key_id"`
	// KEKID names the key-encryption key version that wrapped it.
	KEKID       string    `json:"kek_id"`
	Wrapped     []byte    `json:"wrapped"`
	CreatedAt   time.Time `json:"created_at"`
	RotateAfter time.Time `json:"rotate_after"`
}

// PutArchiveKey stores (or replaces, for a rewrap) an archive key.
func (s *Store) PutArchiveKey(k ArchiveKey) error {
	data, err := json.Marshal(k)
	if err != nil {
		return fmt.Errorf("encode archive key: %w", err)
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.Bucket(bucketArchiveKeys).CreateBucketIfNotExists([]byte(k.NodeID))
		if err != nil {
			return err
		}
		return b.Put([]byte(k.KeyID), data)
	})
}

// ArchiveKeys returns a node's archive keys, oldest first; the last is the
// current one.
func (s *Store) ArchiveKeys(nodeID string) ([]ArchiveKey, error) {
	var out []ArchiveKey
	err := s.db.View(func(tx *bolt.Tx) error {
		return appendArchiveKeys(tx, []byte(nodeID), &out)
	})
	return out, err
}

// appendArchiveKeys appends a node's stored keys to out, oldest first.
func appendArchiveKeys(tx *bolt.Tx, node []byte, out *[]ArchiveKey) error {
	b := tx.Bucket(bucketArchiveKeys).Bucket(node)
	if b == nil {
		return nil
	}
	return b.ForEach(func(_, v []byte) error {
		var k ArchiveKey
		if err := json.Unmarshal(v, &k); err != nil {
			return fmt.Errorf("decode archive key of node %s: %w", node, err)
		}
		*out = append(*out, k)
		return nil
	})
}

// AllArchiveKeys returns every node's archive keys (for a rewrap).
func (s *Store) AllArchiveKeys() ([]ArchiveKey, error) {
	var out []ArchiveKey
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketArchiveKeys).ForEachBucket(func(node []byte) error {
			return appendArchiveKeys(tx, node, &out)
		})
	})
	return out, err
}

// PruneArchiveKeys deletes a node's archive keys made before before that
// are neither its newest nor named by any of its cataloged WAL ranges, in
// one transaction with the reading of the catalog. It returns how many it
// deleted.
func (s *Store) PruneArchiveKeys(nodeID string, before time.Time) (int, error) {
	n := 0
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketArchiveKeys).Bucket([]byte(nodeID))
		if b == nil {
			return nil
		}
		ranges, err := walRangesTx(tx, nodeID)
		if err != nil {
			return err
		}
		used := map[string]bool{}
		for _, r := range ranges {
			for _, id := range r.GetKeyIds() {
				used[id] = true
			}
		}
		newest, _ := b.Cursor().Last()
		var drop [][]byte
		if err := b.ForEach(func(k, v []byte) error {
			var key ArchiveKey
			if err := json.Unmarshal(v, &key); err != nil {
				return fmt.Errorf("decode archive key of node %s: %w", nodeID, err)
			}
			if !used[string(k)] && string(k) != string(newest) && key.CreatedAt.Before(before) {
				drop = append(drop, k)
			}
			return nil
		}); err != nil {
			return err
		}
		for _, k := range drop {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		n = len(drop)
		return nil
	})
	return n, err
}
