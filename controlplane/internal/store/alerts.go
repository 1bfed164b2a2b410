package store

import (
	"encoding/binary"

	bolt "go.etcd.io/bbolt"
)

// Alert buckets (made on open; no schema change):
//
//	alerts/
//	  <fingerprint>     -> JSON alerts.Alert: one firing alert of the built-in
//	                       alerting, with its since
//	alert_transitions/
//	  <8-byte sequence> -> JSON alerts.Transition: stored with the change of
//	                       the firing set that made it, deleted once the
//	                       notification outbox took it
//
// Package alerts owns the encoding; the store keeps the bytes, so a restart
// loads the firing set as it was and hands on what the outbox had not taken.
var (
	bucketAlerts           = []byte("alerts")
	bucketAlertTransitions = []byte("alert_transitions")
)

// SaveAlerts writes firing alerts (put, by fingerprint), removes resolved
// ones (del) and appends transitions, in one transaction; it returns the
// transitions' IDs, in order. Like every write it is refused with
// ErrDiskFull while the data disk is full.
func (s *Store) SaveAlerts(put map[string][]byte, del []string, transitions [][]byte) ([]uint64, error) {
	var ids []uint64
	err := s.db.Update(func(tx *bolt.Tx) error {
		ids = ids[:0]
		b := tx.Bucket(bucketAlerts)
		for _, fp := range del {
			if err := b.Delete([]byte(fp)); err != nil {
				return err
			}
		}
		for fp, v := range put {
			if err := b.Put([]byte(fp), v); err != nil {
				return err
			}
		}
		tb := tx.Bucket(bucketAlertTransitions)
		for _, v := range transitions {
			id, err := tb.NextSequence()
			if err != nil {
				return err
			}
			if err := tb.Put(binary.BigEndian.AppendUint64(nil, id), v); err != nil {
				return err
			}
			ids = append(ids, id)
		}
		return nil
	})
	return ids, err
}

// Alerts returns the stored firing alerts by fingerprint.
func (s *Store) Alerts() (map[string][]byte, error) {
	out := map[string][]byte{}
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketAlerts).ForEach(func(k, v []byte) error {
			out[string(k)] = append([]byte(nil), v...)
			return nil
		})
	})
	return out, err
}

// AlertTransition is a stored transition the outbox has not taken yet.
type AlertTransition struct {
	ID   uint64
	Data []byte
}

// AlertTransitions returns the stored transitions, oldest first.
func (s *Store) AlertTransitions() ([]AlertTransition, error) {
	var out []AlertTransition
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketAlertTransitions).ForEach(func(k, v []byte) error {
			if len(k) == 8 {
				out = append(out, AlertTransition{ID: binary.BigEndian.Uint64(k), Data: append([]byte(nil), v...)})
			}
			return nil
		})
	})
	return out, err
}

// DeleteAlertTransitions removes transitions the outbox took.
func (s *Store) DeleteAlertTransitions(ids []uint64) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketAlertTransitions)
		for _, id := range ids {
			if err := b.Delete(binary.BigEndian.AppendUint64(nil, id)); err != nil {
				return err
			}
		}
		return nil
	})
}
