package store

import (
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	"github.com/forlock/fleet/internal/pglsn"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// WAL catalog bucket (made on open; no schema change):
//
//	wal_ranges/
//	  <node-id>/
//	    <timeline, 4 bytes BE><start LSN, 8 bytes BE><destination tag, 8 bytes>
//	                    -> protobuf forlockv1.WalRange: one contiguous run of
//	                       archived WAL (never one entry per segment)
//
// The destination tag is the first 8 bytes of the SHA-256 of the
// destination's text, so ranges of one node in two destinations never merge.
// Agents report their ranges whole and often; MergeWalRanges folds them in
// and writes only what changed. Retention trims a range's start when its
// delete task succeeds (JobWrite.WalTrims).
var bucketWalRanges = []byte("wal_ranges")

// WalTrim removes from the catalog the WAL of a node's range (its
// timeline and destination) that lies wholly before Before: the WAL a
// delete_backup task deleted.
type WalTrim struct {
	NodeID string
	Range  *forlockv1.WalRange
}

// DestinationText is a destination as text, for messages and the
// catalog's destination tag: "dir:/path", "s3:bucket/prefix" or "default".
func DestinationText(d *forlockv1.BackupDestination) string {
	switch k := d.GetKind().(type) {
	case *forlockv1.BackupDestination_Dir:
		return "dir:" + k.Dir
	case *forlockv1.BackupDestination_S3:
		return "s3:" + k.S3.GetBucket() + "/" + k.S3.GetPrefix()
	}
	return "default"
}

func walKey(r *forlockv1.WalRange) ([]byte, error) {
	start, err := pglsn.Parse(r.GetStartLsn())
	if err != nil {
		return nil, err
	}
	k := make([]byte, 20)
	binary.BigEndian.PutUint32(k, r.GetTimeline())
	binary.BigEndian.PutUint64(k[4:], uint64(start))
	tag := sha256.Sum256([]byte(DestinationText(r.GetDestination())))
	copy(k[12:], tag[:8])
	return k, nil
}

// WalRanges returns a node's cataloged WAL ranges ordered by timeline and
// start.
func (s *Store) WalRanges(nodeID string) ([]*forlockv1.WalRange, error) {
	var out []*forlockv1.WalRange
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		out, err = walRangesTx(tx, nodeID)
		return err
	})
	return out, err
}

// WalNodes returns the IDs of the nodes with cataloged WAL.
func (s *Store) WalNodes() ([]string, error) {
	var out []string
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketWalRanges).ForEachBucket(func(k []byte) error {
			out = append(out, string(k))
			return nil
		})
	})
	return out, err
}

func walRangesTx(tx *bolt.Tx, nodeID string) ([]*forlockv1.WalRange, error) {
	b := tx.Bucket(bucketWalRanges).Bucket([]byte(nodeID))
	if b == nil {
		return nil, nil
	}
	var out []*forlockv1.WalRange
	err := b.ForEach(func(_, v []byte) error {
		r := &forlockv1.WalRange{}
		if err := proto.Unmarshal(v, r); err != nil {
			return fmt.Errorf("decode WAL range of node %s: %w", nodeID, err)
		}
		out = append(out, r)
		return nil
	})
	return out, err
}

// MergeWalRanges folds reported ranges (node ID -> ranges, each already
// validated) into the catalog and reports whether anything changed. A range
// that overlaps or touches a cataloged one of the same timeline and
// destination grows it; one already covered changes nothing. Nothing is
// written when nothing changed: a check in a read transaction comes first.
func (s *Store) MergeWalRanges(reports map[string][]*forlockv1.WalRange) (bool, error) {
	changed := false
	if err := s.db.View(func(tx *bolt.Tx) error {
		for node, in := range reports {
			cur, err := walRangesTx(tx, node)
			if err != nil {
				return err
			}
			if _, c := MergeRanges(cur, in); c {
				changed = true
				return nil
			}
		}
		return nil
	}); err != nil || !changed {
		return false, err
	}
	return true, s.db.Update(func(tx *bolt.Tx) error {
		for node, in := range reports {
			cur, err := walRangesTx(tx, node)
			if err != nil {
				return err
			}
			out, c := MergeRanges(cur, in)
			if !c {
				continue
			}
			if err := replaceWalRanges(tx, node, out); err != nil {
				return err
			}
		}
		return nil
	})
}

func replaceWalRanges(tx *bolt.Tx, node string, ranges []*forlockv1.WalRange) error {
	root := tx.Bucket(bucketWalRanges)
	if root.Bucket([]byte(node)) != nil {
		if err := root.DeleteBucket([]byte(node)); err != nil {
			return err
		}
	}
	if len(ranges) == 0 {
		return nil
	}
	b, err := root.CreateBucket([]byte(node))
	if err != nil {
		return err
	}
	for _, r := range ranges {
		k, err := walKey(r)
		if err != nil {
			return fmt.Errorf("WAL range of node %s: %w", node, err)
		}
		data, err := proto.Marshal(r)
		if err != nil {
			return err
		}
		if err := b.Put(k, data); err != nil {
			return err
		}
	}
	return nil
}

func putWalTrims(tx *bolt.Tx, trims []WalTrim) error {
	for _, t := range trims {
		cur, err := walRangesTx(tx, t.NodeID)
		if err != nil {
			return err
		}
		out, changed, err := TrimRanges(cur, t.Range)
		if err != nil {
			return err
		}
		if changed {
			if err := replaceWalRanges(tx, t.NodeID, out); err != nil {
				return err
			}
		}
	}
	return nil
}

// span is a range's positions, parsed.
func span(r *forlockv1.WalRange) (pglsn.LSN, pglsn.LSN) {
	s, _ := pglsn.Parse(r.GetStartLsn())
	e, _ := pglsn.Parse(r.GetEndLsn())
	return s, e
}

func sameStream(a, b *forlockv1.WalRange) bool {
	return a.GetTimeline() == b.GetTimeline() && DestinationText(a.GetDestination()) == DestinationText(b.GetDestination())
}

// MergeRanges folds in into cur: each reported range absorbs the ranges
// of its timeline and destination it overlaps or touches. It returns the
// new set, ordered by timeline and start, and whether it differs from cur.
// Ranges must have valid LSNs.
func MergeRanges(cur, in []*forlockv1.WalRange) ([]*forlockv1.WalRange, bool) {
	out := slices.Clone(cur)
	changed := false
	for _, r := range in {
		rs, re := span(r)
		merged := proto.CloneOf(r)
		var absorbed []*forlockv1.WalRange
		out = slices.DeleteFunc(out, func(c *forlockv1.WalRange) bool {
			cs, ce := span(c)
			if sameStream(c, r) && cs <= re && rs <= ce {
				absorbed = append(absorbed, c)
				return true
			}
			return false
		})
		for _, c := range absorbed {
			merged = union(merged, c)
		}
		if len(absorbed) != 1 || !proto.Equal(absorbed[0], merged) {
			changed = true
		}
		out = append(out, merged)
	}
	sortRanges(out)
	return out, changed
}

func sortRanges(rs []*forlockv1.WalRange) {
	slices.SortFunc(rs, func(a, b *forlockv1.WalRange) int {
		as, _ := span(a)
		bs, _ := span(b)
		return cmp.Or(cmp.Compare(a.GetTimeline(), b.GetTimeline()), cmp.Compare(as, bs),
			cmp.Compare(DestinationText(a.GetDestination()), DestinationText(b.GetDestination())))
	})
}

// union joins two overlapping or touching ranges of one stream. Counts are
// the covering range's when one covers the other; otherwise the second's
// share beyond the first is added in proportion to its span.
func union(a, b *forlockv1.WalRange) *forlockv1.WalRange {
	as, ae := span(a)
	bs, be := span(b)
	out := proto.CloneOf(a)
	switch {
	case as <= bs && ae >= be: // a covers b
	case bs <= as && be >= ae: // b covers a
		out.Segments, out.SizeBytes = b.GetSegments(), b.GetSizeBytes()
	default:
		lo, hi := max(as, bs), min(ae, be)
		extra := func(n uint64) uint64 {
			if be <= bs || hi <= lo {
				return n
			}
			return n - uint64(float64(n)*float64(hi-lo)/float64(be-bs))
		}
		out.Segments += extra(b.GetSegments())
		out.SizeBytes += extra(b.GetSizeBytes())
	}
	if bs < as {
		out.StartLsn, out.StartTime = b.GetStartLsn(), b.GetStartTime()
	}
	if be > ae || (be == ae && b.GetEndTime().AsTime().After(a.GetEndTime().AsTime())) {
		out.EndLsn, out.EndTime = b.GetEndLsn(), b.GetEndTime()
	}
	ids := append(slices.Clone(a.GetKeyIds()), b.GetKeyIds()...)
	slices.Sort(ids)
	out.KeyIds = slices.Compact(ids)
	return out
}

// TrimRanges removes from cur the WAL of t's timeline and destination that
// a deletion of every file wholly before t.end_lsn removed: ranges that end
// at or before the segment holding it go, a range across it starts at that
// segment's boundary.
func TrimRanges(cur []*forlockv1.WalRange, t *forlockv1.WalRange) ([]*forlockv1.WalRange, bool, error) {
	cut, err := pglsn.Parse(t.GetEndLsn())
	if err != nil {
		return nil, false, err
	}
	cut -= cut % pglsn.SegmentSize
	changed := false
	var out []*forlockv1.WalRange
	for _, r := range cur {
		rs, re := span(r)
		switch {
		case !sameStream(r, t) || rs >= cut:
			out = append(out, r)
		case re <= cut:
			changed = true
		default:
			c := proto.CloneOf(r)
			kept := float64(re-cut) / float64(re-rs)
			c.StartLsn = cut.String()
			c.Segments = max(1, uint64(float64(c.GetSegments())*kept))
			c.SizeBytes = uint64(float64(c.GetSizeBytes()) * kept)
			out = append(out, c)
			changed = true
		}
	}
	return out, changed, nil
}

// WalBase is a physical base backup that a point-in-time restore can start
// from: available, with its WAL start and end time.
type WalBase struct {
	Artifact *forlockv1.Artifact
	Start    pglsn.LSN
	End      time.Time
}

// WalBases returns every node's WAL bases, by node ID, newest end first,
// from one scan of the catalog (restore resolution, recovery windows and
// WAL retention all start from them).
func (s *Store) WalBases() (map[string][]WalBase, error) {
	out := map[string][]WalBase{}
	err := s.ScanRestorePoints("", func(rp *forlockv1.RestorePoint) bool {
		for _, a := range rp.GetArtifacts() {
			if a.GetKind() != forlockv1.ArtifactKind_ARTIFACT_KIND_POSTGRES || a.GetPostgresFormat() != forlockv1.PostgresFormat_POSTGRES_FORMAT_PHYSICAL ||
				a.GetState() != forlockv1.ArtifactState_ARTIFACT_STATE_AVAILABLE || a.GetBackupEndTime() == nil || a.GetTimeline() == 0 {
				continue
			}
			start, err := pglsn.Parse(a.GetWalStartLsn())
			if err != nil {
				continue
			}
			out[rp.GetNodeId()] = append(out[rp.GetNodeId()], WalBase{Artifact: a, Start: start, End: a.GetBackupEndTime().AsTime()})
		}
		return true
	})
	for _, bases := range out {
		slices.SortStableFunc(bases, func(a, b WalBase) int { return b.End.Compare(a.End) })
	}
	return out, err
}

// WAL heal bucket (made on open; no schema change):
//
//	wal_heals/
//	  <node-id>  -> RFC 3339 time of the last base backup submitted to heal a gap
//
// It outlives a restart of the control plane, so a node with a gap gets
// at most one healing base backup per heal interval however often the
// control plane restarts.
var bucketWalHeals = []byte("wal_heals")

// WalHealedAt returns when a base backup was last submitted to heal a gap
// of nodeID's WAL, or the zero time.
func (s *Store) WalHealedAt(nodeID string) (time.Time, error) {
	var at time.Time
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketWalHeals).Get([]byte(nodeID))
		if v == nil {
			return nil
		}
		var err error
		at, err = time.Parse(time.RFC3339Nano, string(v))
		return err
	})
	return at, err
}

// SetWalHealed records that a base backup was submitted to heal a gap of
// nodeID's WAL at at.
func (s *Store) SetWalHealed(nodeID string, at time.Time) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketWalHeals).Put([]byte(nodeID), []byte(at.UTC().Format(time.RFC3339Nano)))
	})
}

// WalNewestEnds returns, per node with cataloged WAL, the end time of its
// newest archived WAL: one read of the WAL catalog, which holds a few merged
// ranges per node.
func (s *Store) WalNewestEnds() (map[string]time.Time, error) {
	out := map[string]time.Time{}
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketWalRanges).ForEachBucket(func(k []byte) error {
			rs, err := walRangesTx(tx, string(k))
			for _, r := range rs {
				if t := r.GetEndTime().AsTime(); r.GetEndTime() != nil && t.After(out[string(k)]) {
					out[string(k)] = t
				}
			}
			return err
		})
	})
	return out, err
}
