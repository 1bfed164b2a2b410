package audit

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

var (
	bucketAudit = []byte("audit")
	bucketMeta  = []byte("audit_meta")
	keyHead     = []byte("head")
	keyAnchor   = []byte("anchor")
)

// ErrNoLog means the database has no audit buckets: CreateBuckets was not
// run in it.
var ErrNoLog = errors.New("the database has no audit log")

// CreateBuckets makes the audit buckets; the store calls it when it opens
// the database.
func CreateBuckets(tx *bolt.Tx) error {
	for _, b := range [][]byte{bucketAudit, bucketMeta} {
		if _, err := tx.CreateBucketIfNotExists(b); err != nil {
			return fmt.Errorf("create bucket %s: %w", b, err)
		}
	}
	return nil
}

// Log appends records and signs checkpoints.
type Log struct {
	key *Key
	now func() time.Time

	// OnOutputError, if set, is told when an output fails (Publish also
	// returns the error).
	OnOutputError func(error)

	mu        sync.Mutex
	published uint64           // last seq handed to the outputs
	pending   map[uint64]Batch // committed batches waiting for an earlier one
	outputs   []Output
}

// Output receives every committed batch, in order (the checkpoint file, a
// JSON-lines sink).
type Output interface {
	Write(b Batch) error
}

// Batch is the records one transaction appended and the head it left.
type Batch struct {
	Entries []Entry
	Head    Checkpoint
}

// New returns a log signing with key and writing committed batches to the
// outputs. last is the head's sequence in the database (Head), so that
// the outputs get each batch once.
func New(key *Key, last uint64, outputs ...Output) *Log {
	return &Log{key: key, now: time.Now, published: last, pending: map[uint64]Batch{}, outputs: outputs}
}

// Append adds records to the chain inside tx and signs the new head. The
// records are stored only if tx commits; then Publish hands them to the
// outputs. Time is set when it is zero; Seq is always set.
func (l *Log) Append(tx *bolt.Tx, recs ...Record) (Batch, error) {
	b, meta := tx.Bucket(bucketAudit), tx.Bucket(bucketMeta)
	if b == nil || meta == nil {
		return Batch{}, ErrNoLog
	}
	seq, prev, err := tip(meta)
	if err != nil {
		return Batch{}, err
	}
	now := l.now().UTC()
	out := Batch{Entries: make([]Entry, 0, len(recs))}
	for _, r := range recs {
		seq++
		r.Seq = seq
		if r.Time.IsZero() {
			r.Time = now
		}
		r.Time = r.Time.UTC()
		content, err := json.Marshal(r)
		if err != nil {
			return Batch{}, fmt.Errorf("encode audit record: %w", err)
		}
		prev = chainHash(prev, content)
		if err := b.Put(seqKey(seq), append(bytes.Clone(prev), content...)); err != nil {
			return Batch{}, fmt.Errorf("append audit record: %w", err)
		}
		out.Entries = append(out.Entries, Entry{Record: r, Hash: hex.EncodeToString(prev)})
	}
	out.Head = l.key.sign(seq, prev, now)
	head, err := json.Marshal(out.Head)
	if err != nil {
		return Batch{}, err
	}
	if err := meta.Put(keyHead, head); err != nil {
		return Batch{}, fmt.Errorf("write audit head: %w", err)
	}
	return out, nil
}

// tip returns the sequence and chain hash of the newest record (or of the
// anchor, or genesis).
func tip(meta *bolt.Bucket) (uint64, []byte, error) {
	for _, k := range [][]byte{keyHead, keyAnchor} {
		if v := meta.Get(k); v != nil {
			c, err := decodeCheckpoint(v)
			if err != nil {
				return 0, nil, fmt.Errorf("audit %s does not decode: run forlockctl audit verify: %w", k, err)
			}
			h, err := hex.DecodeString(c.Hash)
			if err != nil || len(h) != len(genesis) {
				return 0, nil, fmt.Errorf("audit %s holds a bad hash: run forlockctl audit verify", k)
			}
			return c.Seq, h, nil
		}
	}
	return 0, genesis, nil
}

// Head returns the signed head checkpoint in tx; ok is false while the log
// is empty.
func Head(tx *bolt.Tx) (Checkpoint, bool, error) {
	meta := tx.Bucket(bucketMeta)
	if meta == nil {
		return Checkpoint{}, false, ErrNoLog
	}
	v := meta.Get(keyHead)
	if v == nil {
		return Checkpoint{}, false, nil
	}
	c, err := decodeCheckpoint(v)
	return c, err == nil, err
}

// Publish hands a committed batch to the outputs, after every batch
// committed before it (bbolt runs commit handlers after it releases its
// lock, so two batches may arrive out of order). An output's error is
// returned; the database, not the outputs, is the record.
func (l *Log) Publish(b Batch) error {
	if len(b.Entries) == 0 {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.pending[b.Entries[0].Seq] = b
	var errs []error
	for {
		next, ok := l.pending[l.published+1]
		if !ok {
			break
		}
		delete(l.pending, l.published+1)
		l.published = next.Head.Seq
		for _, o := range l.outputs {
			errs = append(errs, o.Write(next))
		}
	}
	if len(l.pending) > 1024 {
		// A batch that never came (its transaction failed after a later
		// one was numbered: cannot happen while bbolt serialises writers,
		// but never hold memory for ever on that belief).
		clear(l.pending)
	}
	err := errors.Join(errs...)
	if err != nil && l.OnOutputError != nil {
		l.OnOutputError(err)
	}
	return err
}

// Scan calls fn for each record from seq from (inclusive) upwards until fn
// returns false.
func Scan(tx *bolt.Tx, from uint64, fn func(Entry) bool) error {
	b := tx.Bucket(bucketAudit)
	if b == nil {
		return ErrNoLog
	}
	c := b.Cursor()
	for k, v := c.Seek(seqKey(from)); k != nil; k, v = c.Next() {
		e, err := decodeEntry(k, v)
		if err != nil {
			return fmt.Errorf("%w: run forlockctl audit verify", err)
		}
		if !fn(e) {
			return nil
		}
	}
	return nil
}

// Prune deletes the records older than before, from the oldest, and
// leaves a signed anchor at the last one deleted so that Verify still
// starts from a known hash. The head is never pruned: the newest record
// stays whatever its age. It returns how many records went.
func (l *Log) Prune(tx *bolt.Tx, before time.Time) (int, error) {
	b, meta := tx.Bucket(bucketAudit), tx.Bucket(bucketMeta)
	if b == nil || meta == nil {
		return 0, ErrNoLog
	}
	c := b.Cursor()
	lastK, _ := c.Last()
	var n int
	var seq uint64
	var hash []byte
	for k, v := c.First(); k != nil && !bytes.Equal(k, lastK); k, v = c.First() {
		e, err := decodeEntry(k, v)
		if err != nil {
			return n, fmt.Errorf("prune: %w", err)
		}
		if !e.Time.Before(before) {
			break
		}
		seq, hash = e.Seq, bytes.Clone(v[:len(genesis)])
		if err := c.Delete(); err != nil {
			return n, err
		}
		n++
	}
	if n == 0 {
		return 0, nil
	}
	v, err := json.Marshal(l.key.sign(seq, hash, l.now()))
	if err != nil {
		return n, err
	}
	return n, meta.Put(keyAnchor, v)
}
