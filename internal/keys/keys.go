// Package keys wraps and unwraps the per-artifact data keys of backups with a
// key-encryption key (KEK) that never leaves the control plane.
//
// Every artifact is encrypted with a fresh 32-byte data key from NewDataKey.
// The control plane wraps that key with a Wrapper and stores the wrapped key
// and the wrapper's key ID in the artifact header and in the catalog; the
// plain key only travels inside a task over mTLS. To restore, the control
// plane unwraps with the key ID recorded beside the wrapped key.
//
// Key IDs name both the kind of wrapper and the key version, so several
// wrappers can coexist during a rotation:
//
//	local:1a2b3c4d              a local key file (File); the hex is the first
//	                            8 digits of SHA-256 of the key
//	vault-transit:<name>:v<n>   a Vault Transit key <name> at version n
//	                            (controlplane/internal/vault)
//	scrypt:N=…,r=…,p=…:<salt>   a key derived from a passphrase (Passphrase)
package keys

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
)

// TransitKeyIDPrefix starts the key ID of every data key wrapped by a Vault
// Transit key.
const TransitKeyIDPrefix = "vault-transit:"

// DataKeySize is the size of a data key and of a local key-encryption key:
// 32 bytes, for AES-256.
const DataKeySize = 32

// Errors that callers can test with errors.Is.
var (
	// ErrUnknownKey means the wrapped key names a key ID that this wrapper
	// does not hold.
	ErrUnknownKey = errors.New("unknown key ID")
	// ErrWrongKey means the wrapped key does not authenticate under the key it
	// names: a different key with the same ID, or a corrupted wrapped key.
	ErrWrongKey = errors.New("wrapped key does not authenticate")
	// ErrInsecureKeyFile means a key file is readable or writable by group or
	// other users.
	ErrInsecureKeyFile = errors.New("key file permissions too open")
)

// Wrapper wraps data keys with a key-encryption key. Implementations are safe
// for concurrent use.
type Wrapper interface {
	// KeyID names the key that Wrap uses now, e.g. "local:1a2b3c4d".
	KeyID() string
	// Wrap encrypts a plain data key under the key named by KeyID.
	Wrap(ctx context.Context, plain []byte) ([]byte, error)
	// Unwrap decrypts a wrapped data key made by the key keyID. It fails with
	// an error wrapping ErrUnknownKey for a key ID it does not hold, and one
	// wrapping ErrWrongKey when the wrapped key does not authenticate.
	Unwrap(ctx context.Context, keyID string, wrapped []byte) ([]byte, error)
}

// NewDataKey returns a fresh random data key of DataKeySize bytes.
func NewDataKey() ([]byte, error) {
	k := make([]byte, DataKeySize)
	if _, err := rand.Read(k); err != nil {
		return nil, fmt.Errorf("new data key: %w", err)
	}
	return k, nil
}
