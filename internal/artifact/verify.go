package artifact

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"

	"github.com/forlock/fleet/internal/keys"
)

// Verify reads the whole artifact in src, checking that its SHA-256 is
// wantSHA256 (hex) and that every segment decrypts and decompresses with the
// key unwrap returns. The plaintext is discarded. A checksum mismatch wins
// over any decryption error (ErrChecksumMismatch: the bytes changed in
// storage); with a matching checksum the error wraps ErrWrongKey,
// ErrCorrupted or ErrTruncated. Read errors of src are returned as they are.
func Verify(src io.Reader, wantSHA256 string, unwrap UnwrapFunc) (Header, error) {
	return VerifyTo(io.Discard, src, wantSHA256, unwrap)
}

// VerifyTo is Verify writing the plaintext to dst as it decrypts. Every
// byte written has been authenticated, but the checksum is known only at
// the end: whatever dst does with the plaintext must be undone when
// VerifyTo fails. A write error of dst ends it with that error.
func VerifyTo(dst io.Writer, src io.Reader, wantSHA256 string, unwrap UnwrapFunc) (Header, error) {
	want, err := hex.DecodeString(wantSHA256)
	if err != nil || len(want) != sha256.Size {
		return Header{}, fmt.Errorf("verify artifact: expected checksum %q is not 64 hex digits", wantSHA256)
	}
	hr := &hashReader{r: src, h: sha256.New()}
	h, body, openErr := Open(hr, unwrap)
	if openErr == nil {
		_, openErr = io.Copy(dst, body)
		_ = body.Close()
	}
	if hr.err != nil {
		return h, fmt.Errorf("verify artifact: read: %w", hr.err)
	}
	// Hash what decryption did not read, so the checksum covers every byte.
	if _, err := io.Copy(io.Discard, hr); err != nil {
		return h, fmt.Errorf("verify artifact: read: %w", err)
	}
	if got := hr.h.Sum(nil); !bytes.Equal(got, want) {
		detail := "it decrypts: the expected checksum belongs to other bytes"
		if openErr != nil {
			detail = fmt.Sprintf("the artifact was changed or truncated in storage; decryption says: %v", openErr)
		}
		return h, fmt.Errorf("verify artifact: %w: %d bytes have sha256 %x, want %x (%s)", ErrChecksumMismatch, hr.n, got, want, detail)
	}
	if openErr != nil {
		return h, fmt.Errorf("verify artifact: %w", openErr)
	}
	return h, nil
}

// hashReader hashes and counts what it reads, and remembers a read error.
type hashReader struct {
	r   io.Reader
	h   hash.Hash
	n   int64
	err error
}

func (r *hashReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.h.Write(p[:n])
	r.n += int64(n)
	if err != nil && err != io.EOF { //nolint:errorlint // io.Reader contract: EOF is returned as is
		r.err = err
	}
	return n, err
}

// UnwrapWith returns an UnwrapFunc that unwraps with w under ctx.
func UnwrapWith(ctx context.Context, w keys.Wrapper) UnwrapFunc {
	return func(keyID string, wrapped []byte) ([]byte, error) {
		return w.Unwrap(ctx, keyID, wrapped)
	}
}

// Decrypt writes the plaintext of the artifact in src to dst using only a
// local key file: the disaster-recovery path of `forlockctl backup decrypt`,
// which needs no control plane. The key file is loaded, never created. On
// error dst may hold a prefix of the plaintext; every byte written was
// authenticated.
func Decrypt(dst io.Writer, src io.Reader, keyFile string) (Header, error) {
	kek, err := keys.LoadFile(keyFile)
	if err != nil {
		return Header{}, fmt.Errorf("decrypt artifact: %w", err)
	}
	h, r, err := Open(src, UnwrapWith(context.Background(), kek))
	if err != nil {
		return h, fmt.Errorf("decrypt artifact: %w", err)
	}
	defer r.Close() //nolint:errcheck // never fails
	if _, err := io.Copy(dst, r); err != nil {
		return h, fmt.Errorf("decrypt artifact: %w", err)
	}
	return h, nil
}
