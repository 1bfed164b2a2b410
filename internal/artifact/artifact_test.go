package artifact_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/forlock/fleet/internal/artifact"
	"github.com/forlock/fleet/internal/keys"
)

const mib = 1 << 20

type sealed struct {
	raw     []byte
	sha     string
	dataKey []byte
	header  artifact.Header
}

func newKEK(tb testing.TB) (*keys.File, string) {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "kek.json")
	kek, err := keys.LoadOrCreateFile(path)
	require.NoError(tb, err)
	return kek, path
}

// seal writes plain as an artifact under a fresh data key wrapped by kek.
func seal(tb testing.TB, kek keys.Wrapper, plain []byte) sealed {
	tb.Helper()
	dk, err := keys.NewDataKey()
	require.NoError(tb, err)
	wrapped, err := kek.Wrap(context.Background(), dk)
	require.NoError(tb, err)
	h := artifact.Header{
		Kind:       artifact.KindPostgres,
		Node:       "node-1",
		Created:    time.Date(2025, 6, 7, 8, 9, 10, 11, time.UTC),
		KeyID:      kek.KeyID(),
		WrappedKey: wrapped,
		FileName:   "postgres_20250607_080910.dump",
	}
	var buf bytes.Buffer
	w, err := artifact.NewWriter(&buf, h, dk)
	require.NoError(tb, err)
	// Odd-sized writes, as a pipe from docker exec delivers them.
	for rest := plain; len(rest) > 0; {
		n := min(len(rest), 32*1024+7)
		m, err := w.Write(rest[:n])
		require.NoError(tb, err)
		require.Equal(tb, n, m)
		rest = rest[n:]
	}
	require.NoError(tb, w.Close())
	sum := sha256.Sum256(buf.Bytes())
	require.Equal(tb, int64(buf.Len()), w.Size())
	require.Equal(tb, hex.EncodeToString(sum[:]), w.SHA256())
	return sealed{raw: buf.Bytes(), sha: w.SHA256(), dataKey: dk, header: h}
}

func openAll(raw []byte, unwrap artifact.UnwrapFunc) (artifact.Header, []byte, error) {
	h, r, err := artifact.Open(bytes.NewReader(raw), unwrap)
	if err != nil {
		return h, nil, err
	}
	defer r.Close() //nolint:errcheck // never fails
	out, err := io.ReadAll(r)
	return h, out, err
}

func TestRoundTrip(t *testing.T) {
	kek, _ := newKEK(t)
	unwrap := artifact.UnwrapWith(context.Background(), kek)
	for _, tt := range []struct {
		name  string
		plain []byte
	}{
		{"0 B", nil},
		{"1 B", []byte{'x'}},
		{"1 MiB-1 random", random(mib - 1)},
		{"1 MiB random", random(mib)},
		{"1 MiB+1 random", random(mib + 1)},
		{"1 MiB-1 rows", rows(mib - 1)},
		{"1 MiB+1 rows", rows(mib + 1)},
		{"20 MiB random", random(20 * mib)},
		{"20 MiB rows", rows(20 * mib)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := seal(t, kek, tt.plain)
			h, got, err := openAll(s.raw, unwrap)
			require.NoError(t, err)
			require.True(t, bytes.Equal(tt.plain, got), "plaintext differs: %d bytes back, %d in", len(got), len(tt.plain))
			require.Equal(t, artifact.FormatVersion, h.Version)
			require.Equal(t, s.header.Kind, h.Kind)
			require.Equal(t, s.header.Node, h.Node)
			require.True(t, s.header.Created.Equal(h.Created))
			require.Equal(t, artifact.Compression, h.Compression)
			require.Equal(t, artifact.Cipher, h.Cipher)
			require.Equal(t, s.header.KeyID, h.KeyID)
			require.Equal(t, s.header.WrappedKey, h.WrappedKey)
			require.Equal(t, s.header.FileName, h.FileName)

			_, err = artifact.Verify(bytes.NewReader(s.raw), s.sha, unwrap)
			require.NoError(t, err)
			_, got, err = openAll(s.raw, artifact.PlainKey(s.dataKey))
			require.NoError(t, err)
			require.True(t, bytes.Equal(tt.plain, got))
		})
	}
}

func TestCompresses(t *testing.T) {
	kek, _ := newKEK(t)
	for _, tt := range []struct {
		name  string
		plain []byte
		max   int
		why   string
	}{
		{"rows", rows(8 * mib), 3 * mib, "zstd compresses dump-like text to under 3/8"},
		{"bytea hex", hexRows(8 * mib), 9 * mib / 2, "Huffman coding about halves hex ciphertext"},
		{"random", random(8 * mib), 8*mib + 64<<10, "incompressible bytes are stored, with little overhead"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := seal(t, kek, tt.plain)
			require.Less(t, len(s.raw), tt.max, tt.why)
		})
	}
}

// TestReadsArtifactOfEarlierWriter reads an artifact written by the writer
// before it switched from zstd SpeedDefault to SpeedFastest (testdata,
// data key 32 bytes of 7): the level is not part of the format, so
// artifacts already stored must keep restoring.
func TestReadsArtifactOfEarlierWriter(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "v1-zstd-speeddefault.flk"))
	require.NoError(t, err)
	dk := bytes.Repeat([]byte{7}, 32)
	const sum = "460990eedff68176922cc161cfc538849f91c1e799b778a4babf52938424fb0f"
	h, err := artifact.Verify(bytes.NewReader(raw), sum, artifact.PlainKey(dk))
	require.NoError(t, err)
	require.Equal(t, artifact.Compression, h.Compression)
	require.Equal(t, "golden", h.Node)
	_, got, err := openAll(raw, artifact.PlainKey(dk))
	require.NoError(t, err)
	want := append(rows(256<<10), random(16<<10)...)
	require.True(t, bytes.Equal(want, got), "plaintext differs: %d bytes back, %d written", len(got), len(want))
}

// refused says err is one of the reasons an artifact is refused.
func refused(t *testing.T, err error, msgAndArgs ...any) {
	t.Helper()
	require.Error(t, err, msgAndArgs...)
	if !errors.Is(err, artifact.ErrCorrupted) && !errors.Is(err, artifact.ErrTruncated) && !errors.Is(err, artifact.ErrWrongKey) {
		require.Fail(t, "not a refusal: "+err.Error(), msgAndArgs...)
	}
}

func TestFlippedByteRefused(t *testing.T) {
	kek, _ := newKEK(t)
	unwrap := artifact.UnwrapWith(context.Background(), kek)

	check := func(t *testing.T, s sealed, i int) {
		t.Helper()
		bad := bytes.Clone(s.raw)
		bad[i] ^= 0x01
		_, _, err := openAll(bad, unwrap)
		refused(t, err, "open with byte %d flipped", i)
		_, err = artifact.Verify(bytes.NewReader(bad), s.sha, unwrap)
		require.ErrorIs(t, err, artifact.ErrChecksumMismatch, "byte %d", i)
		// Even with a checksum made for the damaged bytes, Verify refuses
		// because it decrypts everything.
		sum := sha256.Sum256(bad)
		_, err = artifact.Verify(bytes.NewReader(bad), hex.EncodeToString(sum[:]), unwrap)
		refused(t, err, "verify with byte %d flipped", i)
	}

	t.Run("every header byte", func(t *testing.T) {
		s := seal(t, kek, rows(64*1024))
		hlen := headerLen(t, s.raw)
		for i := range hlen + 40 { // our header and Tink's stream header
			check(t, s, i)
		}
	})
	t.Run("body and tail", func(t *testing.T) {
		s := seal(t, kek, random(3*mib+12345))
		n := len(s.raw)
		hlen := headerLen(t, s.raw)
		for _, i := range []int{hlen + 40, hlen + 41, hlen + mib/2, hlen + mib - 1, hlen + mib, hlen + mib + 1,
			hlen + 2*mib + 99, n - 17, n - 16, n - 1} {
			check(t, s, i)
		}
	})
}

func headerLen(t *testing.T, raw []byte) int {
	t.Helper()
	r := bytes.NewReader(raw)
	_, err := artifact.ReadHeader(r)
	require.NoError(t, err)
	return len(raw) - r.Len()
}

func TestTruncationRefused(t *testing.T) {
	kek, _ := newKEK(t)
	unwrap := artifact.UnwrapWith(context.Background(), kek)
	s := seal(t, kek, random(2*mib+500))
	hlen := headerLen(t, s.raw)
	n := len(s.raw)
	for _, cut := range []int{0, 3, hlen - 1, hlen, hlen + 20, hlen + 40, hlen + 41, hlen + mib, hlen + mib + 7, n - 16, n - 1} {
		_, _, err := openAll(s.raw[:cut], unwrap)
		require.ErrorIs(t, err, artifact.ErrTruncated, "cut at %d of %d", cut, n)
		_, err = artifact.Verify(bytes.NewReader(s.raw[:cut]), s.sha, unwrap)
		require.ErrorIs(t, err, artifact.ErrChecksumMismatch, "cut at %d", cut)
		require.ErrorContains(t, err, "truncated")
	}
	t.Run("appended bytes", func(t *testing.T) {
		_, _, err := openAll(append(bytes.Clone(s.raw), 0), unwrap)
		refused(t, err)
	})
}

func TestWrongKeyRefused(t *testing.T) {
	kek, _ := newKEK(t)
	other, _ := newKEK(t)
	s := seal(t, kek, rows(100_000))

	_, _, err := openAll(s.raw, artifact.UnwrapWith(context.Background(), other))
	require.ErrorIs(t, err, artifact.ErrWrongKey)
	require.ErrorIs(t, err, keys.ErrUnknownKey)
	require.ErrorContains(t, err, kek.KeyID())

	wrongDK, err := keys.NewDataKey()
	require.NoError(t, err)
	_, _, err = openAll(s.raw, artifact.PlainKey(wrongDK))
	require.ErrorIs(t, err, artifact.ErrWrongKey)
	require.ErrorContains(t, err, "does not belong to this artifact")

	_, err = artifact.Verify(bytes.NewReader(s.raw), s.sha, artifact.PlainKey(wrongDK))
	require.ErrorIs(t, err, artifact.ErrWrongKey)
	require.NotErrorIs(t, err, artifact.ErrChecksumMismatch)
}

func TestVerifyChecksumMismatch(t *testing.T) {
	kek, _ := newKEK(t)
	unwrap := artifact.UnwrapWith(context.Background(), kek)
	s := seal(t, kek, rows(100_000))

	other := sha256.Sum256([]byte("something else"))
	_, err := artifact.Verify(bytes.NewReader(s.raw), hex.EncodeToString(other[:]), unwrap)
	require.ErrorIs(t, err, artifact.ErrChecksumMismatch)
	require.ErrorContains(t, err, s.sha)
	require.ErrorContains(t, err, "expected checksum belongs to other bytes")

	_, err = artifact.Verify(bytes.NewReader(s.raw), "abc", unwrap)
	require.ErrorContains(t, err, "not 64 hex digits")

	_, err = artifact.Verify(iotestErr{}, s.sha, unwrap)
	require.ErrorIs(t, err, errDisk)
	require.NotErrorIs(t, err, artifact.ErrChecksumMismatch)
}

var errDisk = errors.New("disk on fire")

type iotestErr struct{}

func (iotestErr) Read([]byte) (int, error) { return 0, errDisk }

// limitWriter fails once more than n bytes were written, like a full disk.
type limitWriter struct{ n int }

func (l *limitWriter) Write(p []byte) (int, error) {
	if len(p) > l.n {
		m := l.n
		l.n = 0
		return m, errDisk
	}
	l.n -= len(p)
	return len(p), nil
}

func TestWriterReportsDestinationErrors(t *testing.T) {
	kek, _ := newKEK(t)
	dk, err := keys.NewDataKey()
	require.NoError(t, err)
	wrapped, err := kek.Wrap(context.Background(), dk)
	require.NoError(t, err)
	h := artifact.Header{Kind: artifact.KindRedis, Node: "n1", Created: time.Now(), KeyID: kek.KeyID(), WrappedKey: wrapped, FileName: "redis_x.rdb"}

	w, err := artifact.NewWriter(&limitWriter{n: 3 * mib}, h, dk)
	require.NoError(t, err)
	var werr error
	data := random(20 * mib)
	for i := 0; i < 20 && werr == nil; i++ {
		_, werr = w.Write(data[i*mib : (i+1)*mib])
	}
	cerr := w.Close()
	require.ErrorIs(t, errors.Join(werr, cerr), errDisk)
	require.ErrorIs(t, cerr, errDisk, "Close reports the failure too")
	_, err = w.Write([]byte("x"))
	require.ErrorContains(t, err, "writer closed")

	_, err = artifact.NewWriter(&limitWriter{n: 10}, h, dk)
	require.ErrorIs(t, err, errDisk)

	t.Run("invalid input", func(t *testing.T) {
		_, err := artifact.NewWriter(io.Discard, h, dk[:16])
		require.ErrorContains(t, err, "data key is 16 bytes")
		bad := h
		bad.FileName = "../../etc/cron.d/x"
		_, err = artifact.NewWriter(io.Discard, bad, dk)
		require.ErrorContains(t, err, "file name")
		bad = h
		bad.Compression = "gzip"
		_, err = artifact.NewWriter(io.Discard, bad, dk)
		require.ErrorContains(t, err, `compression "gzip"`)
	})
}

func TestDecryptWithKeyFile(t *testing.T) {
	kek, path := newKEK(t)
	plain := rows(3 * mib)
	s := seal(t, kek, plain)

	var out bytes.Buffer
	h, err := artifact.Decrypt(&out, bytes.NewReader(s.raw), path)
	require.NoError(t, err)
	require.Equal(t, "postgres_20250607_080910.dump", h.FileName)
	require.True(t, bytes.Equal(plain, out.Bytes()))

	_, otherPath := newKEK(t)
	_, err = artifact.Decrypt(io.Discard, bytes.NewReader(s.raw), otherPath)
	require.ErrorIs(t, err, artifact.ErrWrongKey)
	require.ErrorContains(t, err, kek.KeyID())

	require.NoError(t, os.Chmod(path, 0o644))
	_, err = artifact.Decrypt(io.Discard, bytes.NewReader(s.raw), path)
	require.ErrorIs(t, err, keys.ErrInsecureKeyFile)

	_, err = artifact.Decrypt(io.Discard, bytes.NewReader(s.raw), filepath.Join(t.TempDir(), "none.json"))
	require.ErrorIs(t, err, os.ErrNotExist)
}

func TestCloseEarlyReleases(t *testing.T) {
	kek, _ := newKEK(t)
	s := seal(t, kek, rows(4*mib))
	_, r, err := artifact.Open(bytes.NewReader(s.raw), artifact.UnwrapWith(context.Background(), kek))
	require.NoError(t, err)
	_, err = io.CopyN(io.Discard, r, 1000)
	require.NoError(t, err)
	require.NoError(t, r.Close())
	_, err = r.Read(make([]byte, 10))
	require.ErrorContains(t, err, "reader closed")
}
