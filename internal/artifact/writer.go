package artifact

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"sync/atomic"

	"github.com/klauspost/compress/zstd"
	"github.com/tink-crypto/tink-go/v2/streamingaead/subtle"
)

// Parameters of AES256_GCM_HKDF_1MB, as in Tink's key template.
const (
	dataKeySize = 32
	segmentSize = 1 << 20
	hkdfHash    = "SHA256"
)

// encoderConcurrency lets zstd compress one block while the caller fills the
// next and the body is encrypted: 2 suits the 2-core nodes we run on and
// bounds memory to two blocks in flight.
const encoderConcurrency = 2

// encoderOptions choose zstd's fastest level with entropy coding of blocks
// that have no matches. A dump of a password vault is mostly bytea
// ciphertext, which pg_dump writes as hex: few matches, but literals that
// Huffman coding halves. SpeedDefault gets the same ratio there at a third
// of the speed (BenchmarkPipelineBackup/hex); on plain text rows the
// fastest level loses about 2% of ratio for no loss of speed, and bytes
// that do not compress at all are stored raw either way. The level is not
// part of the format: every zstd reader reads every level, and the window
// (4 MiB) stays under the reader's maxWindow.
var encoderOptions = []zstd.EOption{
	zstd.WithEncoderLevel(zstd.SpeedFastest),
	zstd.WithAllLitEntropyCompression(true),
	zstd.WithEncoderConcurrency(encoderConcurrency),
	zstd.WithEncoderCRC(false), // the AEAD authenticates every byte
}

// Writer writes one artifact: the header when created, then the compressed
// and encrypted body as the caller writes. Close must be called to finish
// the artifact; it is not valid before Close returns nil.
type Writer struct {
	sum  *digestWriter
	aead io.WriteCloser
	zw   *zstd.Encoder
	done bool
	err  error
}

// NewWriter writes h to dst and returns a Writer for the plaintext. dataKey
// is the artifact's plain 32-byte data key; h.KeyID and h.WrappedKey must
// name its wrapped form. Empty h.Version, h.Compression and h.Cipher are
// filled in.
func NewWriter(dst io.Writer, h Header, dataKey []byte) (*Writer, error) {
	if len(dataKey) != dataKeySize {
		return nil, fmt.Errorf("new artifact: data key is %d bytes, want %d", len(dataKey), dataKeySize)
	}
	if h.Version == 0 {
		h.Version = FormatVersion
	}
	if h.Compression == "" {
		h.Compression = Compression
	}
	if h.Cipher == "" {
		h.Cipher = Cipher
	}
	h.keyCheck = keyCheck(dataKey)
	hdr, aadLen, err := h.encode()
	if err != nil {
		return nil, fmt.Errorf("new artifact: header: %w", err)
	}
	sum := &digestWriter{w: dst, h: sha256.New()}
	if _, err := sum.Write(hdr); err != nil {
		return nil, fmt.Errorf("new artifact: write header: %w", err)
	}
	cipher, err := subtle.NewAESGCMHKDF(dataKey, hkdfHash, dataKeySize, segmentSize, 0)
	if err != nil {
		return nil, fmt.Errorf("new artifact: %w", err)
	}
	aead, err := cipher.NewEncryptingWriter(sum, hdr[:aadLen])
	if err != nil {
		return nil, fmt.Errorf("new artifact: start encryption: %w", err)
	}
	zw, err := zstd.NewWriter(aead, encoderOptions...)
	if err != nil {
		return nil, fmt.Errorf("new artifact: start compression: %w", err)
	}
	return &Writer{sum: sum, aead: aead, zw: zw}, nil
}

// Write compresses and encrypts p.
func (w *Writer) Write(p []byte) (int, error) {
	if w.done {
		return 0, errors.New("write artifact: writer closed")
	}
	if w.err != nil {
		return 0, w.err
	}
	n, err := w.zw.Write(p)
	if err != nil {
		w.err = fmt.Errorf("write artifact: %w", err)
		return n, w.err
	}
	return n, nil
}

// Close flushes the compressor, writes the final segment and reports any
// error of the pipeline or of dst. It does not close dst. A second Close
// returns the first one's result.
func (w *Writer) Close() error {
	if w.done {
		return w.err
	}
	w.done = true
	zerr := w.zw.Close()
	aerr := w.aead.Close()
	if w.err == nil {
		switch {
		case zerr != nil:
			w.err = fmt.Errorf("finish artifact: compress: %w", zerr)
		case aerr != nil:
			w.err = fmt.Errorf("finish artifact: encrypt: %w", aerr)
		}
	}
	return w.err
}

// Size returns the number of bytes written to dst so far, header included.
// It is safe to call from another goroutine, e.g. to report progress.
func (w *Writer) Size() int64 { return w.sum.n.Load() }

// SHA256 returns the hex SHA-256 of every byte written to dst. Only meaningful
// after Close returned nil.
func (w *Writer) SHA256() string { return hex.EncodeToString(w.sum.h.Sum(nil)) }

// digestWriter counts and hashes what passes through to w.
type digestWriter struct {
	w io.Writer
	h hash.Hash
	n atomic.Int64
}

func (d *digestWriter) Write(p []byte) (int, error) {
	n, err := d.w.Write(p)
	d.h.Write(p[:n])
	d.n.Add(int64(n))
	return n, err
}
