package artifact_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/forlock/fleet/internal/artifact"
	"github.com/forlock/fleet/internal/keys"
)

// The pipeline benchmarks run 64 MiB of dump-like data through three
// pipelines, reading in 64 KiB chunks as from a pipe. Two kinds of data:
// rows (text columns, see rows) and hex (bytea ciphertext as pg_dump writes
// it, see hexRows: what the stand-in API's vault holds).
//
//	artifact  ours: zstd SpeedFastest → AES256_GCM_HKDF_1MB → SHA-256
//	gzip      the guide's manual procedure: compress/gzip default level, no
//	          encryption, no checksum
//	copy      io.Copy, the floor
//
// b.SetBytes is the plaintext size, so MB/s compare directly. Restore runs
// the same in reverse; "verify" is the pre-restore check (checksum + full
// decryption, plaintext discarded).

type onlyReader struct{ io.Reader }
type onlyWriter struct{ io.Writer }

func copyChunks(dst io.Writer, src io.Reader) (int64, error) {
	return io.CopyBuffer(onlyWriter{dst}, onlyReader{src}, make([]byte, 64<<10))
}

func benchHeader(b *testing.B) (artifact.Header, []byte) {
	b.Helper()
	kek, _ := newKEK(b)
	dk, err := keys.NewDataKey()
	require.NoError(b, err)
	wrapped, err := kek.Wrap(context.Background(), dk)
	require.NoError(b, err)
	return artifact.Header{
		Kind: artifact.KindPostgres, Node: "bench", Created: time.Now(),
		KeyID: kek.KeyID(), WrappedKey: wrapped, FileName: "postgres_bench.dump",
	}, dk
}

// benchData are the data sets of the pipeline benchmarks.
var benchData = []struct {
	name string
	data func() []byte
}{{"rows", benchRows}, {"hex", benchHex}}

func BenchmarkPipelineBackup(b *testing.B) {
	for _, d := range benchData {
		b.Run(d.name, func(b *testing.B) { benchBackup(b, d.data()) })
	}
}

func benchBackup(b *testing.B, data []byte) {
	b.Helper()
	h, dk := benchHeader(b)

	b.Run("artifact", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		var size int64
		for b.Loop() {
			w, err := artifact.NewWriter(io.Discard, h, dk)
			require.NoError(b, err)
			_, err = copyChunks(w, bytes.NewReader(data))
			require.NoError(b, err)
			require.NoError(b, w.Close())
			size = w.Size()
		}
		b.ReportMetric(float64(len(data))/float64(size), "ratio")
	})
	b.Run("gzip", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		var size int64
		for b.Loop() {
			cw := &countWriter{}
			zw := gzip.NewWriter(cw)
			_, err := copyChunks(zw, bytes.NewReader(data))
			require.NoError(b, err)
			require.NoError(b, zw.Close())
			size = cw.n
		}
		b.ReportMetric(float64(len(data))/float64(size), "ratio")
	})
	b.Run("copy", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			_, err := copyChunks(io.Discard, bytes.NewReader(data))
			require.NoError(b, err)
		}
	})
}

func BenchmarkPipelineRestore(b *testing.B) {
	for _, d := range benchData {
		b.Run(d.name, func(b *testing.B) { benchRestore(b, d.data()) })
	}
}

func benchRestore(b *testing.B, data []byte) {
	b.Helper()
	h, dk := benchHeader(b)
	var sealedBuf bytes.Buffer
	w, err := artifact.NewWriter(&sealedBuf, h, dk)
	require.NoError(b, err)
	_, err = copyChunks(w, bytes.NewReader(data))
	require.NoError(b, err)
	require.NoError(b, w.Close())
	sealed, sum := sealedBuf.Bytes(), w.SHA256()
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, err = zw.Write(data)
	require.NoError(b, err)
	require.NoError(b, zw.Close())

	b.Run("artifact", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		for b.Loop() {
			_, r, err := artifact.Open(bytes.NewReader(sealed), artifact.PlainKey(dk))
			require.NoError(b, err)
			_, err = copyChunks(io.Discard, r)
			require.NoError(b, err)
		}
	})
	b.Run("verify", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		for b.Loop() {
			_, err := artifact.Verify(bytes.NewReader(sealed), sum, artifact.PlainKey(dk))
			require.NoError(b, err)
		}
	})
	b.Run("gunzip", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		for b.Loop() {
			zr, err := gzip.NewReader(bytes.NewReader(gz.Bytes()))
			require.NoError(b, err)
			_, err = copyChunks(io.Discard, zr)
			require.NoError(b, err)
		}
	})
	b.Run("copy", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			_, err := copyChunks(io.Discard, bytes.NewReader(data))
			require.NoError(b, err)
		}
	})
}

type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return len(p), nil
}
