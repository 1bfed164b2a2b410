package keys

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/forlock/fleet/internal/atomicfile"
)

// LocalKeyIDPrefix starts the key ID of every local key file.
const LocalKeyIDPrefix = "local:"

// fileVersion is the version of the key file format.
const fileVersion = 1

// maxFileSize bounds what LoadFile reads; a valid file is about 100 bytes.
const maxFileSize = 4096

// wrapVersion is the first byte of a key wrapped by a File.
const wrapVersion = 1

// fileJSON is the on-disk form of a local key file, for example
//
//	{"version":1,"key_id":"local:1a2b3c4d","key":"<base64 of 32 bytes>"}
type fileJSON struct {
	Version int    `json:"version"`
	KeyID   string `json:"key_id"`
	Key     string `json:"key"`
}

// File is a Wrapper whose key-encryption key is a 32-byte key in a local
// file of mode 0600. It wraps with AES-256-GCM (random 96-bit nonce) and binds
// the key ID as associated data. A wrapped key is
//
//	0x01 || nonce (12 bytes) || ciphertext || tag (16 bytes)   = 61 bytes for a data key
type File struct {
	id   string
	aead cipher.AEAD
}

var _ Wrapper = (*File)(nil)

// LoadOrCreateFile loads the key file at path, or creates it with a fresh
// random key if it does not exist. Creation is atomic: the file appears
// complete with mode 0600 or not at all, and when two processes race the
// second one loads the first one's key. Missing parent directories are
// created with mode 0700.
func LoadOrCreateFile(path string) (*File, error) {
	f, err := LoadFile(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return f, err
	}
	if err := createFile(path); err != nil {
		return nil, err
	}
	return LoadFile(path)
}

// LoadFile loads an existing key file. It refuses a file that group or other
// users can access (ErrInsecureKeyFile), that is not a regular file, or whose
// content is not a valid key file.
func LoadFile(path string) (*File, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("key file: %w", err)
	}
	defer fh.Close() //nolint:errcheck // read-only
	st, err := fh.Stat()
	if err != nil {
		return nil, fmt.Errorf("key file: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("key file %s: not a regular file", path)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("%w: key file %s has mode %04o, run: chmod 600 %s", ErrInsecureKeyFile, path, perm, path)
	}
	raw, err := io.ReadAll(io.LimitReader(fh, maxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("key file %s: %w", path, err)
	}
	if len(raw) > maxFileSize {
		return nil, fmt.Errorf("key file %s: larger than %d bytes, not a key file", path, maxFileSize)
	}
	key, err := parseFile(raw)
	if err != nil {
		return nil, fmt.Errorf("key file %s: %w", path, err)
	}
	return newFile(key)
}

// parseFile checks a key file's content strictly and returns its key.
func parseFile(raw []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var fj fileJSON
	if err := dec.Decode(&fj); err != nil {
		return nil, fmt.Errorf("parse: %w", err)
	}
	if dec.More() {
		return nil, errors.New("parse: data after the JSON object")
	}
	if fj.Version != fileVersion {
		return nil, fmt.Errorf("version %d not supported, want %d", fj.Version, fileVersion)
	}
	key, err := base64.StdEncoding.Strict().DecodeString(fj.Key)
	if err != nil {
		return nil, fmt.Errorf("key: %w", err)
	}
	if len(key) != DataKeySize {
		return nil, fmt.Errorf("key is %d bytes, want %d", len(key), DataKeySize)
	}
	if want := LocalKeyID(key); fj.KeyID != want {
		return nil, fmt.Errorf("key_id %q does not match the key (%q): the file is corrupted", fj.KeyID, want)
	}
	return key, nil
}

// createFile writes a new key file at path with atomicfile.WriteNew, which
// never replaces an existing one: a temporary file in the same directory is
// written, synced and hard-linked to path (failing if path exists), and the
// directory is synced.
func createFile(path string) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create key file: %w", err)
	}
	key, err := NewDataKey()
	if err != nil {
		return fmt.Errorf("create key file: %w", err)
	}
	content, err := json.Marshal(fileJSON{Version: fileVersion, KeyID: LocalKeyID(key), Key: base64.StdEncoding.EncodeToString(key)})
	if err != nil {
		return fmt.Errorf("create key file: %w", err)
	}
	if err := atomicfile.WriteNew(path, append(content, '\n'), 0o600); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil // another process created it first; the caller loads it
		}
		return fmt.Errorf("create key file: %w", err)
	}
	return nil
}

func newFile(key []byte) (*File, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("key file: %w", err)
	}
	aead, err := cipher.NewGCMWithRandomNonce(block)
	if err != nil {
		return nil, fmt.Errorf("key file: %w", err)
	}
	return &File{id: LocalKeyID(key), aead: aead}, nil
}

// NewNamed returns a Wrapper holding key under the given key ID, with the
// same wrap format as a key file. The agent wraps its WAL files' data keys
// with the archive key the control plane sent it (ID "archive:…"); a
// restore unwraps them with the same key sent back in the task.
func NewNamed(keyID string, key []byte) (*File, error) {
	if keyID == "" {
		return nil, errors.New("named key: empty key ID")
	}
	if len(key) != DataKeySize {
		return nil, fmt.Errorf("named key %s: key is %d bytes, want %d", keyID, len(key), DataKeySize)
	}
	f, err := newFile(key)
	if err != nil {
		return nil, err
	}
	f.id = keyID
	return f, nil
}

// LocalKeyID derives the key ID of a local key: "local:" and the first 8 hex
// digits of SHA-256 of the key.
func LocalKeyID(key []byte) string {
	sum := sha256.Sum256(key)
	return LocalKeyIDPrefix + hex.EncodeToString(sum[:4])
}

// KeyID returns the ID of the file's key.
func (f *File) KeyID() string { return f.id }

// Wrap encrypts a plain data key.
func (f *File) Wrap(_ context.Context, plain []byte) ([]byte, error) {
	if len(plain) == 0 {
		return nil, errors.New("wrap: empty data key")
	}
	// The AEAD draws a random nonce itself and prepends it (NewGCMWithRandomNonce).
	return f.aead.Seal([]byte{wrapVersion}, nil, plain, []byte(f.id)), nil //nolint:gosec // G407 false positive: nonce is random, see above
}

// Unwrap decrypts a data key wrapped by this file's key.
func (f *File) Unwrap(_ context.Context, keyID string, wrapped []byte) ([]byte, error) {
	if keyID != f.id {
		return nil, fmt.Errorf("unwrap: %w %q: this key file holds %q; use the key file whose ID is %q", ErrUnknownKey, keyID, f.id, keyID)
	}
	if len(wrapped) < 1+f.aead.Overhead() || wrapped[0] != wrapVersion {
		return nil, fmt.Errorf("unwrap with %s: %w: malformed wrapped key", f.id, ErrWrongKey)
	}
	plain, err := f.aead.Open(nil, nil, wrapped[1:], []byte(keyID))
	if err != nil {
		return nil, fmt.Errorf("unwrap with %s: %w: wrong key or corrupted wrapped key", f.id, ErrWrongKey)
	}
	return plain, nil
}
