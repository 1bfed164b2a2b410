package store

import (
	"fmt"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// Catalog buckets (schema versions 1 and 2):
//
//	restore_points/
//	  <restore-point-id>  -> protobuf forlockv1.RestorePoint with its artifacts (IDs sort by time)
//	artifacts/
//	  <artifact-id>       -> <restore-point-id>
//
// Restore points are written in the same transaction as the task result
// that produced them (JobWrite.RestorePoints), so an artifact is cataloged
// exactly when its backup task is recorded as succeeded.
var (
	bucketRestorePoints = []byte("restore_points")
	bucketArtifacts     = []byte("artifacts")
)

func putRestorePoints(tx *bolt.Tx, rps []*forlockv1.RestorePoint) error {
	b, idx := tx.Bucket(bucketRestorePoints), tx.Bucket(bucketArtifacts)
	for _, rp := range rps {
		data, err := proto.Marshal(rp)
		if err != nil {
			return fmt.Errorf("encode restore point %s: %w", rp.GetId(), err)
		}
		if err := b.Put([]byte(rp.GetId()), data); err != nil {
			return err
		}
		for _, a := range rp.GetArtifacts() {
			if err := idx.Put([]byte(a.GetId()), []byte(rp.GetId())); err != nil {
				return err
			}
		}
	}
	return nil
}

func decodeRestorePoint(data []byte) (*forlockv1.RestorePoint, error) {
	if data == nil {
		return nil, ErrNotFound
	}
	rp := &forlockv1.RestorePoint{}
	if err := proto.Unmarshal(data, rp); err != nil {
		return nil, fmt.Errorf("decode restore point: %w", err)
	}
	return rp, nil
}

// RestorePoint returns one restore point.
func (s *Store) RestorePoint(id string) (*forlockv1.RestorePoint, error) {
	var rp *forlockv1.RestorePoint
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		rp, err = decodeRestorePoint(tx.Bucket(bucketRestorePoints).Get([]byte(id)))
		return err
	})
	return rp, err
}

// Artifact returns one artifact and its restore point.
func (s *Store) Artifact(id string) (*forlockv1.Artifact, error) {
	var out *forlockv1.Artifact
	err := s.db.View(func(tx *bolt.Tx) error {
		rpID := tx.Bucket(bucketArtifacts).Get([]byte(id))
		rp, err := decodeRestorePoint(tx.Bucket(bucketRestorePoints).Get(rpID))
		if err != nil {
			return err
		}
		for _, a := range rp.GetArtifacts() {
			if a.GetId() == id {
				out = a
				return nil
			}
		}
		return ErrNotFound
	})
	return out, err
}

// ScanRestorePoints calls fn for restore points from newest to oldest,
// starting below the ID before (all if empty), until fn returns false.
func (s *Store) ScanRestorePoints(before string, fn func(*forlockv1.RestorePoint) bool) error {
	return s.scanBackward(bucketRestorePoints, before, func(_ *bolt.Tx, _, v []byte) (bool, error) {
		rp, err := decodeRestorePoint(v)
		if err != nil {
			return false, err
		}
		return fn(rp), nil
	})
}
