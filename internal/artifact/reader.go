package artifact

import (
	"crypto/hmac"
	"errors"
	"fmt"
	"io"

	"github.com/klauspost/compress/zstd"
	"github.com/tink-crypto/tink-go/v2/streamingaead/subtle"
)

// maxWindow bounds the zstd window the reader accepts; the writer's
// SpeedFastest uses 4 MiB, and artifacts written with SpeedDefault before
// it 8 MiB.
const maxWindow = 32 << 20

// UnwrapFunc returns the plain data key for a wrapped one. Open calls it
// with the key ID and wrapped key from the artifact's header.
type UnwrapFunc func(keyID string, wrapped []byte) ([]byte, error)

// PlainKey returns an UnwrapFunc for a caller that already holds the plain
// data key, like the agent, which receives it in its task. A key that does
// not belong to the artifact is still refused with ErrWrongKey.
func PlainKey(dataKey []byte) UnwrapFunc {
	return func(string, []byte) ([]byte, error) { return dataKey, nil }
}

// Open reads the header of the artifact in src, unwraps its data key and
// returns a reader of the plaintext, decrypted and decompressed as it is
// read. Every segment is authenticated before its bytes are returned, but a
// damaged artifact can still return some plaintext before its error: use
// Verify first where that matters. Errors wrap ErrWrongKey, ErrCorrupted or
// ErrTruncated, or are read errors of src. Reading to the end or an error
// releases the reader's resources; call Close when stopping early.
func Open(src io.Reader, unwrap UnwrapFunc) (Header, io.ReadCloser, error) {
	h, aad, err := readHeader(src)
	if err != nil {
		return Header{}, nil, fmt.Errorf("open artifact: %w", err)
	}
	key, err := unwrap(h.KeyID, h.WrappedKey)
	if err != nil {
		return h, nil, fmt.Errorf("open artifact: %w: cannot unwrap its data key (key ID %q): %w", ErrWrongKey, h.KeyID, err)
	}
	if kc := keyCheck(key); !hmac.Equal(kc[:], h.keyCheck[:]) {
		return h, nil, fmt.Errorf("open artifact: %w: the data key does not belong to this artifact (key ID %q)", ErrWrongKey, h.KeyID)
	}
	cipher, err := subtle.NewAESGCMHKDF(key, hkdfHash, dataKeySize, segmentSize, 0)
	if err != nil {
		return h, nil, fmt.Errorf("open artifact: %w: %w", ErrWrongKey, err)
	}
	es := &endReader{r: src}
	ar, err := cipher.NewDecryptingReader(es, aad)
	if err != nil {
		return h, nil, fmt.Errorf("open artifact: %w", es.classify(err, "the encryption header", 0))
	}
	body := &bodyReader{r: ar, src: es}
	zr, err := zstd.NewReader(body,
		zstd.WithDecoderConcurrency(1),
		zstd.WithDecoderMaxWindow(maxWindow),
	)
	if err != nil {
		if body.err != nil {
			err = body.err
		}
		return h, nil, fmt.Errorf("open artifact: %w", err)
	}
	return h, &reader{zr: zr, body: body}, nil
}

// reader is the plaintext of an artifact.
type reader struct {
	zr   *zstd.Decoder
	body *bodyReader
	err  error // terminal result, io.EOF at a good end
}

func (r *reader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	n, err := r.zr.Read(p)
	if err == nil {
		return n, nil
	}
	switch {
	case r.body.err != nil:
		err = fmt.Errorf("read artifact: %w", r.body.err)
	case errors.Is(err, io.EOF):
		// The compressed stream ended: the encrypted one must end too, so its
		// final segment has been authenticated.
		var one [1]byte
		if m, berr := r.body.Read(one[:]); m != 0 {
			err = fmt.Errorf("read artifact: %w: data after the end of the compressed stream", ErrCorrupted)
		} else if !errors.Is(berr, io.EOF) {
			err = fmt.Errorf("read artifact: %w", berr)
		}
	default:
		err = fmt.Errorf("read artifact: %w: decompress: %w", ErrCorrupted, err)
	}
	r.finish(err)
	return n, r.err
}

func (r *reader) finish(err error) {
	r.err = err
	r.zr.Close()
}

// Close releases the decompressor. It never fails.
func (r *reader) Close() error {
	if r.err == nil {
		r.finish(errors.New("read artifact: reader closed"))
	}
	return nil
}

// bodyReader classifies the errors of the decrypting reader.
type bodyReader struct {
	r     io.Reader
	src   *endReader
	plain int64 // plaintext bytes returned so far
	err   error // classified error, kept for the reader above zstd
}

func (b *bodyReader) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	n, err := b.r.Read(p)
	b.plain += int64(n)
	if err != nil && !errors.Is(err, io.EOF) {
		b.err = b.src.classify(err, "a segment", b.plain)
		return n, b.err
	}
	return n, err
}

// endReader remembers whether src ended or failed.
type endReader struct {
	r     io.Reader
	eof   bool
	ioErr error
}

func (e *endReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	switch {
	case errors.Is(err, io.EOF):
		e.eof = true
	case err != nil:
		e.ioErr = err
	}
	return n, err
}

// classify turns an error of the decrypting reader into one of ours. The
// segment that fails when src has ended is the final one: a truncated
// artifact fails there, but so does one whose last segment (or, for a
// one-segment artifact, whose header) was changed, and the cipher cannot tell
// them apart, so that error wraps both ErrTruncated and ErrCorrupted.
func (e *endReader) classify(err error, what string, plain int64) error {
	where := fmt.Sprintf("after %d plaintext bytes", plain)
	if plain == 0 {
		where = "at the start: the header was changed or the body is damaged"
	}
	switch {
	case e.ioErr != nil:
		return fmt.Errorf("read: %w", e.ioErr)
	case e.eof:
		return fmt.Errorf("%w, or %w: the final segment does not authenticate (%s): %w", ErrTruncated, ErrCorrupted, where, err)
	default:
		return fmt.Errorf("%w: %s does not authenticate (%s): %w", ErrCorrupted, what, where, err)
	}
}
