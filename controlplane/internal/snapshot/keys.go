package snapshot

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/forlock/fleet/internal/artifact"
	"github.com/forlock/fleet/internal/keys"
)

// A snapshot's data key is wrapped by one of two keys, and its key ID (in
// the artifact header, in clear) says which, so a restore knows what to ask
// for before it reads anything else:
//
//	scrypt:N=…,r=…,p=…:<salt>   a passphrase (keys.Passphrase)
//	vault-transit:<key>:v<n>    a Vault Transit key, with TransitContext as
//	                            its associated data
//
// Both are wrapped and unwrapped by a keys.Wrapper: AES-256-GCM under a
// scrypt-derived key, or Vault's own Transit encryption. Nothing here is
// cryptography of its own.

// TransitContext is the associated data of every snapshot data key a
// Transit key wraps: Vault authenticates it, so a snapshot's wrapped key
// does not unwrap as a backup's (made without it) through the same Transit
// key, nor a backup's as a snapshot's.
var TransitContext = []byte("forlock control-plane snapshot v1")

// Errors of choosing a snapshot's key, for errors.Is.
var (
	// ErrBadEncryption means a save asked for no key, or for two.
	ErrBadEncryption = errors.New("choose one snapshot encryption")
	// ErrKeyUnavailable means the key a save asked for cannot be used now:
	// no Vault configured, Vault unreachable, sealed or refusing, or no
	// such Transit key. The message says which and what to do.
	ErrKeyUnavailable = errors.New("snapshot key unavailable")
	// ErrNeedPassphrase means a restore was given no passphrase for a
	// snapshot encrypted to one.
	ErrNeedPassphrase = errors.New("this snapshot is encrypted to a passphrase: give its passphrase file")
	// ErrNeedVault means a restore was given no Vault for a snapshot
	// encrypted to a Vault Transit key.
	ErrNeedVault = errors.New("this snapshot is encrypted to a Vault Transit key: give the Vault to unwrap it with")
)

// TransitFunc returns the keys.Wrapper of the Vault Transit key name, with
// TransitContext as its associated data, after checking that the key exists
// and can encrypt.
type TransitFunc func(ctx context.Context, name string) (keys.Wrapper, error)

// Encryption is what a snapshot's data key is wrapped with: exactly one of
// a passphrase or a Vault Transit key.
type Encryption struct {
	// Passphrase, at least keys.MinPassphrase bytes.
	Passphrase []byte
	// TransitKey names a Transit key on the control plane's Vault (its
	// vault.transit_mount).
	TransitKey string
}

// String names the encryption for logs and audit records, without the
// passphrase.
func (e Encryption) String() string {
	if e.TransitKey != "" {
		return "vault-transit key=" + e.TransitKey
	}
	return "passphrase"
}

// Wrapper returns the keys.Wrapper of enc. A Transit key is checked in
// Vault now, so a save fails before it reads anything; its failures wrap
// ErrKeyUnavailable.
func (s *Saver) Wrapper(ctx context.Context, enc Encryption) (keys.Wrapper, error) {
	switch {
	case len(enc.Passphrase) > 0 && enc.TransitKey != "":
		return nil, fmt.Errorf("%w: give a passphrase or a Vault Transit key, not both", ErrBadEncryption)
	case enc.TransitKey == "":
		w, err := keys.NewPassphrase(enc.Passphrase)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrBadEncryption, err)
		}
		return w, nil
	case s.cfg.Transit == nil:
		return nil, fmt.Errorf("%w: snapshot to the Vault Transit key %q: this control plane has no Vault: configure its vault section (address and login), or use a passphrase",
			ErrKeyUnavailable, enc.TransitKey)
	}
	w, err := s.cfg.Transit(ctx, enc.TransitKey)
	if err != nil {
		return nil, fmt.Errorf("%w: snapshot to the Vault Transit key %q: %w", ErrKeyUnavailable, enc.TransitKey, err)
	}
	return w, nil
}

// Keys are what a restore may unwrap a snapshot's data key with; it uses
// the one the snapshot's key ID names, and only that one (Vault is not
// contacted for a passphrase snapshot).
type Keys struct {
	// Passphrase returns the unwrapper of the passphrase
	// (keys.OpenPassphrase of the passphrase file's); nil when none was
	// given.
	Passphrase func() (keys.Wrapper, error)
	// Transit returns the wrapper of the Vault Transit key that keyID
	// names, logging in to Vault, with TransitContext as its associated
	// data; nil when no Vault was given.
	Transit func(ctx context.Context, keyID string) (keys.Wrapper, error)
}

// unwrapFunc unwraps with the key k holds for the key ID of the file. When
// that key is missing or cannot be had, *missing is set to why: then the
// artifact's "wrong key" is not the story.
func (k Keys) unwrapFunc(ctx context.Context, missing *error) artifact.UnwrapFunc {
	return func(keyID string, wrapped []byte) ([]byte, error) {
		w, err := k.wrapper(ctx, keyID)
		if err != nil {
			*missing = err
			return nil, err
		}
		return w.Unwrap(ctx, keyID, wrapped)
	}
}

// wrapper is the key k holds for keyID.
func (k Keys) wrapper(ctx context.Context, keyID string) (keys.Wrapper, error) {
	switch {
	case strings.HasPrefix(keyID, keys.PassphraseKeyIDPrefix):
		if k.Passphrase == nil {
			return nil, ErrNeedPassphrase
		}
		return k.Passphrase()
	case strings.HasPrefix(keyID, keys.TransitKeyIDPrefix):
		if k.Transit == nil {
			return nil, fmt.Errorf("%w (key %s)", ErrNeedVault, keyID)
		}
		w, err := k.Transit(ctx, keyID)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrKeyUnavailable, err)
		}
		return w, nil
	}
	return nil, fmt.Errorf("%w: key ID %q is neither a passphrase's nor a Vault Transit key's: not a control-plane snapshot", keys.ErrUnknownKey, keyID)
}
