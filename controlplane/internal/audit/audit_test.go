package audit

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"

	"github.com/forlock/fleet/controlplane/internal/secretfile"
)

type testLog struct {
	db   *bolt.DB
	key  *Key
	log  *Log
	file *File
	dir  string
}

func newTestLog(t *testing.T) *testLog {
	t.Helper()
	dir := t.TempDir()
	db, err := bolt.Open(filepath.Join(dir, "fleet.db"), 0o600, &bolt.Options{NoSync: true})
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	require.NoError(t, db.Update(CreateBuckets))
	key, err := LoadOrCreateKey(filepath.Join(dir, "audit.key"))
	require.NoError(t, err)
	file := &File{Path: filepath.Join(dir, "audit-checkpoints.jsonl")}
	t.Cleanup(func() { _ = file.Close() })
	return &testLog{db: db, key: key, log: New(key, 0, file), file: file, dir: dir}
}

// append writes n records in one transaction and publishes them.
func (l *testLog) append(t *testing.T, n int, method string) {
	t.Helper()
	recs := make([]Record, n)
	for i := range recs {
		recs[i] = Record{Actor: "alice", Role: "admin", Client: "127.0.0.1", Method: method, Target: fmt.Sprintf("node-%d", i), Result: ResultOK}
	}
	var b Batch
	require.NoError(t, l.db.Update(func(tx *bolt.Tx) error {
		var err error
		b, err = l.log.Append(tx, recs...)
		return err
	}))
	require.NoError(t, l.log.Publish(b))
}

func (l *testLog) verify(t *testing.T) Report {
	t.Helper()
	outside, err := ReadCheckpoints(l.file.Path)
	require.NoError(t, err)
	var rep Report
	require.NoError(t, l.db.View(func(tx *bolt.Tx) error {
		rep = Verify(tx, l.key.Public(), outside)
		return nil
	}))
	return rep
}

// tamper runs fn on the audit bucket, as someone with the database file
// (and without the key) could.
func (l *testLog) tamper(t *testing.T, fn func(b, meta *bolt.Bucket)) {
	t.Helper()
	require.NoError(t, l.db.Update(func(tx *bolt.Tx) error {
		fn(tx.Bucket(bucketAudit), tx.Bucket(bucketMeta))
		return nil
	}))
}

func filled(t *testing.T) *testLog {
	t.Helper()
	l := newTestLog(t)
	for range 100 {
		l.append(t, 10, "/forlock.v1.JobService/SubmitJob")
	}
	rep := l.verify(t)
	require.True(t, rep.OK(), rep.Problem)
	require.Equal(t, uint64(1000), rep.Records)
	require.Equal(t, uint64(1000), rep.Head.Seq)
	require.Equal(t, uint64(100), rep.Checkpoints, "every committed batch left its checkpoint outside the database")
	return l
}

func TestVerifyNamesTheChangedRecord(t *testing.T) {
	for _, tc := range []struct {
		name string
		seq  uint64
		at   func(v []byte) int // which byte to flip
	}{
		{"content", 500, func(v []byte) int { return len(v) - 5 }},
		{"stored chain hash", 500, func([]byte) int { return 3 }},
		{"first record", 1, func(v []byte) int { return len(v) - 5 }},
		{"newest record", 1000, func(v []byte) int { return len(v) - 5 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := filled(t)
			l.tamper(t, func(b, _ *bolt.Bucket) {
				v := append([]byte(nil), b.Get(seqKey(tc.seq))...)
				v[tc.at(v)] ^= 0x01
				require.NoError(t, b.Put(seqKey(tc.seq), v))
			})
			rep := l.verify(t)
			require.False(t, rep.OK())
			require.Equal(t, tc.seq, rep.Bad, rep.Problem)
			require.Contains(t, rep.Problem, fmt.Sprintf("record %d", tc.seq))
		})
	}
}

func TestVerifyFindsDeletions(t *testing.T) {
	t.Run("a record in the middle", func(t *testing.T) {
		l := filled(t)
		l.tamper(t, func(b, _ *bolt.Bucket) { require.NoError(t, b.Delete(seqKey(300))) })
		rep := l.verify(t)
		require.Equal(t, uint64(300), rep.Bad)
		require.Contains(t, rep.Problem, "record 300 is missing")
	})
	t.Run("the newest records", func(t *testing.T) {
		l := filled(t)
		l.tamper(t, func(b, _ *bolt.Bucket) {
			for s := uint64(991); s <= 1000; s++ {
				require.NoError(t, b.Delete(seqKey(s)))
			}
		})
		rep := l.verify(t)
		require.Equal(t, uint64(991), rep.Bad)
		require.Contains(t, rep.Problem, "records 991 to 1000 were deleted")
	})
	t.Run("the newest records and the head, rolled back to an older signed head", func(t *testing.T) {
		l := filled(t)
		var old []byte
		require.NoError(t, l.db.View(func(tx *bolt.Tx) error {
			old = append(old, tx.Bucket(bucketMeta).Get(keyHead)...)
			return nil
		}))
		l.append(t, 10, "/forlock.v1.BackupService/DeleteBackup")
		// The thief removes the last batch and puts back the head it left
		// behind: the database alone is consistent again.
		l.tamper(t, func(b, meta *bolt.Bucket) {
			for s := uint64(1001); s <= 1010; s++ {
				require.NoError(t, b.Delete(seqKey(s)))
			}
			require.NoError(t, meta.Put(keyHead, old))
		})
		var inside Report
		require.NoError(t, l.db.View(func(tx *bolt.Tx) error { inside = Verify(tx, l.key.Public(), nil); return nil }))
		require.True(t, inside.OK(), "without outside checkpoints the rollback cannot be seen: %s", inside.Problem)
		rep := l.verify(t)
		require.False(t, rep.OK())
		require.Contains(t, rep.Problem, "the database is behind an outside checkpoint at record 1010")
	})
	t.Run("the head", func(t *testing.T) {
		l := filled(t)
		l.tamper(t, func(_, meta *bolt.Bucket) { require.NoError(t, meta.Delete(keyHead)) })
		require.Contains(t, l.verify(t).Problem, "head checkpoint is missing")
	})
}

func TestVerifyRefusesForgedRecords(t *testing.T) {
	l := filled(t)
	// A record appended by someone holding the database but not the key:
	// a valid chain link, an unsigned head.
	other, err := LoadOrCreateKey(filepath.Join(t.TempDir(), "other.key"))
	require.NoError(t, err)
	forger := New(other, 0)
	require.NoError(t, l.db.Update(func(tx *bolt.Tx) error {
		_, err := forger.Append(tx, Record{Actor: "alice", Method: "/forlock.v1.NodeService/RemoveNode", Result: ResultOK})
		return err
	}))
	rep := l.verify(t)
	require.False(t, rep.OK())
	require.Contains(t, rep.Problem, "signed by key "+other.ID)

	// The same, leaving the old head in place.
	l = filled(t)
	l.tamper(t, func(b, meta *bolt.Bucket) {
		head := append([]byte(nil), meta.Get(keyHead)...)
		_, err := forger.Append(b.Tx(), Record{Actor: "alice", Method: "/forlock.v1.NodeService/RemoveNode", Result: ResultOK})
		require.NoError(t, err)
		require.NoError(t, meta.Put(keyHead, head))
	})
	rep = l.verify(t)
	require.Equal(t, uint64(1001), rep.Bad)
	require.Contains(t, rep.Problem, "added without this control plane's key")
}

func TestPruneKeepsTheChainVerifiable(t *testing.T) {
	l := newTestLog(t)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for day := range 10 {
		l.log.now = func() time.Time { return t0.Add(time.Duration(day) * 24 * time.Hour) }
		l.append(t, 5, "/forlock.v1.JobService/SubmitJob")
	}
	var n int
	require.NoError(t, l.db.Update(func(tx *bolt.Tx) error {
		var err error
		n, err = l.log.Prune(tx, t0.Add(7*24*time.Hour))
		return err
	}))
	require.Equal(t, 35, n, "days 0 to 6 went")
	rep := l.verify(t)
	require.True(t, rep.OK(), rep.Problem)
	require.Equal(t, uint64(36), rep.First)
	require.Equal(t, uint64(15), rep.Records)

	// Appending after a prune continues the chain.
	l.append(t, 1, "/forlock.v1.JobService/SubmitJob")
	require.True(t, l.verify(t).OK())

	// Removing the anchor (to hide that records were pruned by hand) fails.
	l.tamper(t, func(_, meta *bolt.Bucket) { require.NoError(t, meta.Delete(keyAnchor)) })
	rep = l.verify(t)
	require.Equal(t, uint64(1), rep.Bad)
	require.Contains(t, rep.Problem, "record 1 is missing")
}

func TestPruneNeverTakesTheHead(t *testing.T) {
	l := newTestLog(t)
	l.append(t, 3, "m")
	var n int
	require.NoError(t, l.db.Update(func(tx *bolt.Tx) error {
		var err error
		n, err = l.log.Prune(tx, time.Now().Add(time.Hour))
		return err
	}))
	require.Equal(t, 2, n)
	rep := l.verify(t)
	require.True(t, rep.OK(), rep.Problem)
	require.Equal(t, uint64(1), rep.Records)
}

// TestFailedTransactionLeavesNoGap: a transaction that appends and then
// fails stores nothing; the next one takes the same sequence numbers.
func TestFailedTransactionLeavesNoGap(t *testing.T) {
	l := newTestLog(t)
	l.append(t, 2, "m")
	err := l.db.Update(func(tx *bolt.Tx) error {
		if _, err := l.log.Append(tx, Record{Method: "m", Result: ResultOK}); err != nil {
			return err
		}
		return os.ErrInvalid
	})
	require.ErrorIs(t, err, os.ErrInvalid)
	l.append(t, 2, "m")
	rep := l.verify(t)
	require.True(t, rep.OK(), rep.Problem)
	require.Equal(t, uint64(4), rep.Last)
}

func TestPublishInOrder(t *testing.T) {
	var got []uint64
	out := outputFunc(func(b Batch) error {
		for _, e := range b.Entries {
			got = append(got, e.Seq)
		}
		return nil
	})
	l := New(nil, 10, out)
	batch := func(from, to uint64) Batch {
		var b Batch
		for s := from; s <= to; s++ {
			b.Entries = append(b.Entries, Entry{Record: Record{Seq: s}})
		}
		b.Head.Seq = to
		return b
	}
	require.NoError(t, l.Publish(batch(13, 14)))
	require.Empty(t, got, "batch 11-12 committed first and has not been published yet")
	require.NoError(t, l.Publish(batch(11, 12)))
	require.Equal(t, []uint64{11, 12, 13, 14}, got)
}

type outputFunc func(Batch) error

func (f outputFunc) Write(b Batch) error { return f(b) }

func TestKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.key")
	k, err := LoadOrCreateKey(path)
	require.NoError(t, err)
	st, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	again, err := LoadOrCreateKey(path)
	require.NoError(t, err)
	require.Equal(t, k.ID, again.ID)
	require.Equal(t, k.Public(), again.Public())

	require.NoError(t, os.Chmod(path, 0o640))
	_, err = LoadOrCreateKey(path)
	require.ErrorIs(t, err, secretfile.ErrExposed)
	require.ErrorContains(t, err, "chmod 600")

	bad := filepath.Join(t.TempDir(), "bad.key")
	require.NoError(t, os.WriteFile(bad, []byte("not a key"), 0o600))
	_, err = LoadOrCreateKey(bad)
	require.ErrorContains(t, err, "not a PEM private key")
}

func TestCheckpointFileStaysSmall(t *testing.T) {
	l := newTestLog(t)
	l.file.MaxBytes = 4096
	for range 200 {
		l.append(t, 1, "m")
	}
	st, err := os.Stat(l.file.Path)
	require.NoError(t, err)
	require.Less(t, st.Size(), int64(4096+1024))
	cps, err := ReadCheckpoints(l.file.Path)
	require.NoError(t, err)
	require.NotEmpty(t, cps)
	require.Equal(t, uint64(200), cps[len(cps)-1].Seq, "the newest checkpoint survives compaction")
	require.True(t, l.verify(t).OK())
}

func TestReadCheckpointsToleratesATornLastLine(t *testing.T) {
	l := newTestLog(t)
	l.append(t, 1, "m")
	l.append(t, 1, "m")
	f, err := os.OpenFile(l.file.Path, os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = f.WriteString(`{"type":"checkpoint","seq":3,"ha`)
	require.NoError(t, err)
	require.NoError(t, f.Close())
	cps, err := ReadCheckpoints(l.file.Path)
	require.NoError(t, err)
	require.Len(t, cps, 2)

	// A bad line before the last is not a crash's doing.
	data, err := os.ReadFile(l.file.Path)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(l.file.Path, append([]byte("garbage\n"), data...), 0o600))
	_, err = ReadCheckpoints(l.file.Path)
	require.ErrorContains(t, err, "line 1 does not decode")
}

func TestSeqKeyOrder(t *testing.T) {
	require.Equal(t, uint64(258), binary.BigEndian.Uint64(seqKey(258)))
	require.Less(t, string(seqKey(255)), string(seqKey(256)))
}
