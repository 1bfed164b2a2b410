package audit

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
)

// FuzzReadCheckpoints: whatever the checkpoint file or sink holds (it lives
// outside the database, where anyone with the disk can write), reading it
// returns checkpoints or an error, never a panic.
func FuzzReadCheckpoints(f *testing.F) {
	f.Add([]byte(`{"type":"checkpoint","seq":3,"hash":"00","time":"2026-12-03T10:00:00Z","key_id":"ab","sig":"AAAA"}` + "\n"))
	f.Add([]byte(`{"type":"record","seq":1}` + "\n" + `{"type":"checkpoint","seq":1`))
	f.Add([]byte("garbage\n\n{}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "cp.jsonl")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		_, _ = ReadCheckpoints(path)
	})
}

// FuzzDecodeEntry: a stored record, however damaged, decodes or fails
// with an error naming it.
func FuzzDecodeEntry(f *testing.F) {
	f.Add(seqKey(1), append(make([]byte, 32), []byte(`{"seq":1,"time":"2026-12-03T10:00:00Z","method":"m","result":"OK"}`)...))
	f.Add([]byte{1}, []byte{})
	f.Add(seqKey(7), make([]byte, 31))
	f.Fuzz(func(t *testing.T, k, v []byte) {
		e, err := decodeEntry(k, v)
		if err == nil && e.Seq != binary.BigEndian.Uint64(k) {
			t.Fatalf("record %d decoded under key %x", e.Seq, k)
		}
	})
}
