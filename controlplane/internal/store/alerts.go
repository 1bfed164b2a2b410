package store

import (
	bolt "go.etcd.io/bbolt"
)

// Alert bucket (made on open; no schema change):
//
//	alerts/
//	  <fingerprint>     -> JSON alerts.Alert: one firing alert of the built-in
//	                       alerting, with its since
//
// Package alerts owns the encoding; the store keeps the bytes, so a restart
// loads the firing set as it was.
var bucketAlerts = []byte("alerts")

// SaveAlerts writes firing alerts (put, by fingerprint) and removes
// resolved ones (del), in one transaction. Like every write it is refused
// with ErrDiskFull while the data disk is full.
func (s *Store) SaveAlerts(put map[string][]byte, del []string) error {
	return s.db.Update(func(tx *bolt.Tx) error {
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
		return nil
	})
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
