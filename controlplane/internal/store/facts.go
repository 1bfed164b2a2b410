package store

import (
	"fmt"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// Node facts reported by tasks (schema versions 1 and 2, buckets made on open):
//
//	releases/
//	  <node-id>/
//	    <seq, 8 bytes big-endian> -> protobuf forlockv1.Release (newest last)
//	node_certs/
//	  <node-id>         -> protobuf forlockv1.CertificateInfo, the last one installed
//
// Both are written in the transaction that records the task result that
// reported them (JobWrite.Releases, JobWrite.Certificates).
var (
	bucketReleases  = []byte("releases")
	bucketNodeCerts = []byte("node_certs")
)

// MaxReleases is how many releases are kept per node.
const MaxReleases = 21

// NodeRelease is a node's new current release.
type NodeRelease struct {
	NodeID  string
	Release *forlockv1.Release
}

// NodeCertificate is the certificate last installed on a node.
type NodeCertificate struct {
	NodeID string
	Cert   *forlockv1.CertificateInfo
}

func putFacts(tx *bolt.Tx, rels []NodeRelease, certs []NodeCertificate) error {
	for _, r := range rels {
		b, err := tx.Bucket(bucketReleases).CreateBucketIfNotExists([]byte(r.NodeID))
		if err != nil {
			return err
		}
		// History is what the node ran, in order: a release equal to the
		// newest one (a rolled-back upgrade, a no-op) adds nothing, while a
		// rollback to an older release is a new entry.
		if _, last := b.Cursor().Last(); last != nil {
			prev := &forlockv1.Release{}
			if err := proto.Unmarshal(last, prev); err == nil && prev.GetId() == r.Release.GetId() {
				continue
			}
		}
		data, err := proto.Marshal(r.Release)
		if err != nil {
			return fmt.Errorf("encode release: %w", err)
		}
		seq, err := b.NextSequence()
		if err != nil {
			return err
		}
		if err := b.Put(seqKey(seq), data); err != nil {
			return err
		}
		if err := trim(b, MaxReleases); err != nil {
			return err
		}
	}
	for _, c := range certs {
		data, err := proto.Marshal(c.Cert)
		if err != nil {
			return fmt.Errorf("encode certificate: %w", err)
		}
		if err := tx.Bucket(bucketNodeCerts).Put([]byte(c.NodeID), data); err != nil {
			return err
		}
	}
	return nil
}

// trim deletes the oldest keys of b beyond the newest keep. Keys are
// collected first: deleting while a cursor walks skips keys.
func trim(b *bolt.Bucket, keep int) error {
	var keys [][]byte
	c := b.Cursor()
	for k, _ := c.First(); k != nil; k, _ = c.Next() {
		keys = append(keys, k)
	}
	for _, k := range keys[:max(0, len(keys)-keep)] {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// Releases returns a node's releases, newest first.
func (s *Store) Releases(nodeID string) ([]*forlockv1.Release, error) {
	var out []*forlockv1.Release
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketReleases).Bucket([]byte(nodeID))
		if b == nil {
			return nil
		}
		c := b.Cursor()
		for k, v := c.Last(); k != nil; k, v = c.Prev() {
			r := &forlockv1.Release{}
			if err := proto.Unmarshal(v, r); err != nil {
				return fmt.Errorf("decode release of node %s: %w", nodeID, err)
			}
			out = append(out, r)
		}
		return nil
	})
	return out, err
}

// InstalledCertificate returns the certificate last installed on a node,
// or nil.
func (s *Store) InstalledCertificate(nodeID string) (*forlockv1.CertificateInfo, error) {
	var out *forlockv1.CertificateInfo
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketNodeCerts).Get([]byte(nodeID))
		if v == nil {
			return nil
		}
		out = &forlockv1.CertificateInfo{}
		return proto.Unmarshal(v, out)
	})
	return out, err
}
