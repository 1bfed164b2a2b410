package audit

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"encoding/hex"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// Report is what Verify found.
type Report struct {
	// Records is how many records were checked; First and Last their
	// sequence range.
	Records     uint64
	First, Last uint64
	// Head is the signed head checkpoint, when there is one.
	Head Checkpoint
	// Checkpoints is how many outside checkpoints matched the chain.
	Checkpoints uint64
	// Bad is the first record found bad (0 when the problem is not one
	// record, or there is none); Problem says what is wrong ("" when the
	// log is intact).
	Bad     uint64
	Problem string
}

// OK reports whether the log is intact.
func (r Report) OK() bool { return r.Problem == "" }

func (r *Report) fail(bad uint64, format string, args ...any) Report {
	r.Bad, r.Problem = bad, fmt.Sprintf(format, args...)
	return *r
}

// Verify walks the chain in tx from its anchor (or the first record ever)
// to its head, recomputing every link, and checks the head's signature and
// each outside checkpoint (from the checkpoint file or a sink) against the
// chain: a checkpoint beyond the head means records were deleted from the
// end or the database was rolled back.
func Verify(tx *bolt.Tx, pub ed25519.PublicKey, outside []Checkpoint) Report {
	var rep Report
	b, meta := tx.Bucket(bucketAudit), tx.Bucket(bucketMeta)
	if b == nil || meta == nil {
		return rep.fail(0, "the database has no audit log")
	}
	prev, next := genesis, uint64(1)
	if v := meta.Get(keyAnchor); v != nil {
		a, err := decodeCheckpoint(v)
		if err != nil {
			return rep.fail(0, "the retention anchor does not decode: %v", err)
		}
		if err := a.check(pub); err != nil {
			return rep.fail(0, "the retention anchor: %v", err)
		}
		if prev, err = hex.DecodeString(a.Hash); err != nil {
			return rep.fail(0, "the retention anchor holds a bad hash")
		}
		next = a.Seq + 1
	}
	// The chain hash at each outside checkpoint's sequence, to compare.
	want := map[uint64][]byte{}
	for _, c := range outside {
		want[c.Seq] = nil
	}
	c := b.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if len(k) != 8 {
			return rep.fail(next, "a key that is not a record sequence (%x) is in the audit bucket", k)
		}
		seq := binary.BigEndian.Uint64(k)
		if seq != next {
			return rep.fail(next, "record %d is missing (the next record is %d)", next, seq)
		}
		hash, content, err := split(k, v)
		if err != nil {
			return rep.fail(seq, "%v", err)
		}
		sum := chainHash(prev, content)
		if !bytes.Equal(sum, hash) {
			return rep.fail(seq, "record %d was changed after it was written (its chain hash does not match its content and the record before it)", seq)
		}
		if _, err := decodeEntry(k, v); err != nil {
			return rep.fail(seq, "%v", err)
		}
		if _, ok := want[seq]; ok {
			want[seq] = sum
		}
		if rep.Records == 0 {
			rep.First = seq
		}
		rep.Records++
		rep.Last = seq
		prev, next = sum, seq+1
	}
	last := next - 1

	head, ok, err := Head(tx)
	switch {
	case err != nil:
		return rep.fail(0, "the head checkpoint does not decode: %v", err)
	case !ok && rep.Records > 0:
		return rep.fail(0, "the head checkpoint is missing: it was deleted")
	case ok:
		rep.Head = head
		if err := head.check(pub); err != nil {
			return rep.fail(0, "the head: %v", err)
		}
		if head.Seq > last {
			return rep.fail(last+1, "records %d to %d were deleted (the signed head names record %d)", last+1, head.Seq, head.Seq)
		}
		if head.Seq < last {
			return rep.fail(head.Seq+1, "records %d to %d were added without this control plane's key (the signed head is record %d)", head.Seq+1, last, head.Seq)
		}
		if head.Hash != hex.EncodeToString(prev) {
			return rep.fail(last, "the chain does not end in the signed head's hash: records were rewritten")
		}
	}

	for _, cp := range outside {
		if err := cp.check(pub); err != nil {
			return rep.fail(0, "outside %v", err)
		}
		switch {
		case cp.Seq > last:
			return rep.fail(last+1, "the database is behind an outside checkpoint at record %d (the log ends at %d): the newest records were deleted or the database was rolled back", cp.Seq, last)
		case cp.Seq < rep.First || rep.Records == 0:
			continue // pruned by retention
		case cp.Hash != hex.EncodeToString(want[cp.Seq]):
			return rep.fail(cp.Seq, "record %d differs from what the outside checkpoint recorded: the chain was rewritten", cp.Seq)
		}
		rep.Checkpoints++
	}
	return rep
}
