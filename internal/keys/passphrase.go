package keys

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"golang.org/x/crypto/scrypt"
)

// PassphraseKeyIDPrefix starts the key ID of a key derived from a
// passphrase. The rest of the ID is the scrypt parameters and the salt, so
// the ID alone says how to derive the key again:
//
//	scrypt:N=32768,r=8,p=1:<salt, 32 hex digits>
const PassphraseKeyIDPrefix = "scrypt:"

// MinPassphrase is the shortest passphrase NewPassphrase accepts.
const MinPassphrase = 12

// scrypt cost of new keys: 2^15 is the cost the scrypt paper and
// golang.org/x/crypto/scrypt recommend for interactive use in 2017 (about
// 100 ms and 32 MiB here); a snapshot is made and opened rarely.
const (
	scryptN   = 1 << 15
	scryptR   = 8
	scryptP   = 1
	saltBytes = 16
	// maxScryptMemory and maxScryptWork bound what a key ID read from a
	// file may ask for: scrypt needs 128·N·r bytes and about N·r·p block
	// mixes, so a hostile file could otherwise ask for gigabytes or hours.
	// Both allow N up to 2^20 at r=8, p=1 (1 GiB).
	maxScryptMemory = 1 << 30
	maxScryptWork   = 1 << 23
)

// ErrWeakPassphrase means a passphrase is shorter than MinPassphrase.
var ErrWeakPassphrase = fmt.Errorf("passphrase too short: use at least %d characters", MinPassphrase)

// Passphrase is a Wrapper whose key-encryption key is derived from a
// passphrase with scrypt and a random salt; it wraps as File does
// (AES-256-GCM, the key ID as associated data). It is for files an
// operator must open without the control plane: control-plane snapshots.
type Passphrase struct {
	passphrase []byte
	file       *File // the derived key, named by the scrypt key ID
}

var _ Wrapper = (*Passphrase)(nil)

// NewPassphrase derives a new key from passphrase with a fresh salt.
func NewPassphrase(passphrase []byte) (*Passphrase, error) {
	if len(passphrase) < MinPassphrase {
		return nil, ErrWeakPassphrase
	}
	salt := make([]byte, saltBytes)
	if _, err := rand.Read(salt); err != nil {
		return nil, fmt.Errorf("passphrase key: salt: %w", err)
	}
	id := fmt.Sprintf("%sN=%d,r=%d,p=%d:%s", PassphraseKeyIDPrefix, scryptN, scryptR, scryptP, hex.EncodeToString(salt))
	f, err := derive(passphrase, id)
	if err != nil {
		return nil, err
	}
	return &Passphrase{passphrase: passphrase, file: f}, nil
}

// OpenPassphrase returns a Wrapper that unwraps data keys wrapped by a
// Passphrase key with this passphrase, whatever its salt and cost (read
// from the key ID). A wrong passphrase fails Unwrap with ErrWrongKey.
func OpenPassphrase(passphrase []byte) *Passphrase {
	return &Passphrase{passphrase: passphrase}
}

// KeyID names the derived key: its scrypt parameters and salt.
func (p *Passphrase) KeyID() string {
	if p.file == nil {
		return ""
	}
	return p.file.id
}

// Wrap encrypts a plain data key under the derived key.
func (p *Passphrase) Wrap(ctx context.Context, plain []byte) ([]byte, error) {
	if p.file == nil {
		return nil, errors.New("wrap: this passphrase key only unwraps (use NewPassphrase)")
	}
	return p.file.Wrap(ctx, plain)
}

// Unwrap derives the key keyID names from the passphrase and decrypts the
// wrapped key with it.
func (p *Passphrase) Unwrap(ctx context.Context, keyID string, wrapped []byte) ([]byte, error) {
	f := p.file
	if f == nil || f.id != keyID {
		var err error
		if f, err = derive(p.passphrase, keyID); err != nil {
			return nil, err
		}
	}
	plain, err := f.Unwrap(ctx, keyID, wrapped)
	if err != nil {
		return nil, fmt.Errorf("unwrap: %w: wrong passphrase or a damaged file", ErrWrongKey)
	}
	return plain, nil
}

// derive parses a scrypt key ID and derives its key from passphrase.
func derive(passphrase []byte, keyID string) (*File, error) {
	rest, ok := strings.CutPrefix(keyID, PassphraseKeyIDPrefix)
	params, saltHex, ok2 := strings.Cut(rest, ":")
	if !ok || !ok2 {
		return nil, fmt.Errorf("unwrap: %w %q: not a passphrase key", ErrUnknownKey, keyID)
	}
	var n, r, pp int
	for _, kv := range strings.Split(params, ",") {
		k, v, _ := strings.Cut(kv, "=")
		i, err := strconv.Atoi(v)
		if err != nil {
			return nil, fmt.Errorf("unwrap: %w %q: bad scrypt parameter %q", ErrUnknownKey, keyID, kv)
		}
		switch k {
		case "N":
			n = i
		case "r":
			r = i
		case "p":
			pp = i
		default:
			return nil, fmt.Errorf("unwrap: %w %q: unknown scrypt parameter %q", ErrUnknownKey, keyID, k)
		}
	}
	salt, err := hex.DecodeString(saltHex)
	if err != nil || len(salt) < saltBytes || n < 2 || r < 1 || r > 32 || pp < 1 || pp > 16 ||
		n > maxScryptMemory/(128*r) || n*r*pp > maxScryptWork {
		return nil, fmt.Errorf("unwrap: %w %q: scrypt parameters or salt out of range", ErrUnknownKey, keyID)
	}
	key, err := scrypt.Key(passphrase, salt, n, r, pp, DataKeySize)
	if err != nil {
		return nil, fmt.Errorf("passphrase key: %w", err)
	}
	return NewNamed(keyID, key)
}

// maxPassphraseFile bounds what ReadPassphraseFile reads.
const maxPassphraseFile = 4096

// ReadPassphraseFile reads a passphrase from a file that only its owner may
// access (ErrInsecureKeyFile otherwise), without its trailing line break.
func ReadPassphraseFile(path string) ([]byte, error) {
	f, err := os.Open(path) //nolint:gosec // G304: the operator names the file
	if err != nil {
		return nil, fmt.Errorf("passphrase file: %w", err)
	}
	defer func() { _ = f.Close() }()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("passphrase file: %w", err)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("passphrase file %s has mode %04o: %w; run chmod 600 %s", path, perm, ErrInsecureKeyFile, path)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxPassphraseFile+1))
	if err != nil {
		return nil, fmt.Errorf("passphrase file: %w", err)
	}
	if len(b) > maxPassphraseFile {
		return nil, fmt.Errorf("passphrase file %s: longer than %d bytes", path, maxPassphraseFile)
	}
	b = bytes.TrimRight(b, "\r\n")
	if len(b) < MinPassphrase {
		return nil, fmt.Errorf("passphrase file %s: %w", path, ErrWeakPassphrase)
	}
	return b, nil
}
