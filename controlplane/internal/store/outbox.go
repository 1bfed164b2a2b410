package store

import (
	"encoding/binary"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// The notification outbox (package notify), one nested bucket per receiver:
//
//	outbox/
//	  <receiver key>/             (a digest of the receiver's kind and URL, never the URL: it may carry a secret)
//	    <seq, 8 bytes big-endian> -> the notifier's record (opaque here)
//
// A notification is appended for every receiver in one transaction, so
// each receiver gets it or none does; it is deleted once the receiver took
// it (AckOutbox). Keys grow, so a cursor walks a receiver's entries in the order they
// were written: the notifier delivers them in that order. Each receiver
// keeps at most the cap its caller gives; the oldest entries go first.
var bucketOutbox = []byte("outbox")

// OutboxEntry is one notification for one receiver.
type OutboxEntry struct {
	Receiver string
	Data     []byte
}

// OutboxItem is a stored entry with its sequence within its receiver.
type OutboxItem struct {
	Seq  uint64
	Data []byte
}

// errOutboxReceiver refuses a receiver key bbolt cannot hold.
var errOutboxReceiver = errors.New("outbox receiver key must be 1 to 256 bytes")

// AppendOutbox stores entries in one transaction and trims each receiver
// they touch to its newest keep entries (keep <= 0: no cap). It returns,
// per receiver, how many old entries the cap deleted. On ErrDiskFull
// nothing is stored.
func (s *Store) AppendOutbox(entries []OutboxEntry, keep int) (map[string]int, error) {
	dropped := map[string]int{}
	err := s.db.Update(func(tx *bolt.Tx) error {
		clear(dropped)
		root := tx.Bucket(bucketOutbox)
		touched := map[string]*bolt.Bucket{}
		for _, e := range entries {
			if len(e.Receiver) == 0 || len(e.Receiver) > 256 {
				return errOutboxReceiver
			}
			b, err := root.CreateBucketIfNotExists([]byte(e.Receiver))
			if err != nil {
				return err
			}
			seq, err := b.NextSequence()
			if err != nil {
				return err
			}
			if err := b.Put(seqKey(seq), e.Data); err != nil {
				return err
			}
			touched[e.Receiver] = b
		}
		if keep <= 0 {
			return nil
		}
		for r, b := range touched {
			if n := countKeys(b) - keep; n > 0 {
				if err := deleteFirst(b, n); err != nil {
					return err
				}
				dropped[r] = n
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store notifications: %w", err)
	}
	return dropped, nil
}

// deleteFirst deletes the n oldest keys of b (keys collected first:
// deleting while a cursor walks skips keys).
func deleteFirst(b *bolt.Bucket, n int) error {
	var keys [][]byte
	c := b.Cursor()
	for k, _ := c.First(); k != nil && len(keys) < n; k, _ = c.Next() {
		keys = append(keys, k)
	}
	for _, k := range keys {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// Outbox returns a receiver's oldest entries after sequence after (0: from
// the first), at most limit of them.
func (s *Store) Outbox(receiver string, after uint64, limit int) ([]OutboxItem, error) {
	var out []OutboxItem
	err := s.db.View(func(tx *bolt.Tx) error {
		b := outboxBucket(tx, receiver)
		if b == nil {
			return nil
		}
		c := b.Cursor()
		for k, v := c.Seek(seqKey(after + 1)); k != nil && len(out) < limit; k, v = c.Next() {
			out = append(out, OutboxItem{Seq: binary.BigEndian.Uint64(k), Data: append([]byte(nil), v...)})
		}
		return nil
	})
	return out, err
}

// OutboxLen counts a receiver's entries.
func (s *Store) OutboxLen(receiver string) (int, error) {
	var n int
	err := s.db.View(func(tx *bolt.Tx) error {
		if b := outboxBucket(tx, receiver); b != nil {
			n = countKeys(b)
		}
		return nil
	})
	return n, err
}

// AckOutbox deletes a receiver's entries up to and including seq: the
// receiver took them. Acknowledging again (after a refused write) is no
// error.
func (s *Store) AckOutbox(receiver string, seq uint64) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b := outboxBucket(tx, receiver)
		if b == nil {
			return nil
		}
		var keys [][]byte
		c := b.Cursor()
		for k, _ := c.First(); k != nil && binary.BigEndian.Uint64(k) <= seq; k, _ = c.Next() {
			keys = append(keys, k)
		}
		for _, k := range keys {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
}

// OutboxReceivers counts the entries of every receiver that has a bucket.
func (s *Store) OutboxReceivers() (map[string]int, error) {
	out := map[string]int{}
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketOutbox).ForEachBucket(func(k []byte) error {
			out[string(k)] = countKeys(tx.Bucket(bucketOutbox).Bucket(k))
			return nil
		})
	})
	return out, err
}

// DropOutbox deletes a receiver's bucket with its entries.
func (s *Store) DropOutbox(receiver string) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		err := tx.Bucket(bucketOutbox).DeleteBucket([]byte(receiver))
		if errors.Is(err, bolterrors.ErrBucketNotFound) {
			return nil
		}
		return err
	})
}

// countKeys counts b's keys with a cursor: Stats misses the changes of
// the current write transaction.
func countKeys(b *bolt.Bucket) int {
	n := 0
	c := b.Cursor()
	for k, _ := c.First(); k != nil; k, _ = c.Next() {
		n++
	}
	return n
}

func outboxBucket(tx *bolt.Tx, receiver string) *bolt.Bucket {
	root := tx.Bucket(bucketOutbox)
	if root == nil || receiver == "" {
		return nil
	}
	return root.Bucket([]byte(receiver))
}
