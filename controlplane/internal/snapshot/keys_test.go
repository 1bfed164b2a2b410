package snapshot

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/forlock/fleet/controlplane/internal/datadir"
	"github.com/forlock/fleet/internal/keys"
)

// v1Snapshot is a snapshot saved by the control plane before snapshots
// could be encrypted to Vault Transit (format version 1, a passphrase).
const (
	v1Snapshot   = "testdata/v1-passphrase.snap"
	v1Passphrase = "old snapshot passphrase"
)

func passphraseKeys(p string) Keys {
	return Keys{Passphrase: func() (keys.Wrapper, error) { return keys.OpenPassphrase([]byte(p)), nil }}
}

// TestRestoreV1PassphraseSnapshot: a snapshot of the first format restores
// with its passphrase, byte for byte, and Vault is never asked.
func TestRestoreV1PassphraseSnapshot(t *testing.T) {
	target := filepath.Join(t.TempDir(), "data")
	k := passphraseKeys(v1Passphrase)
	k.Transit = func(context.Context, string) (keys.Wrapper, error) {
		t.Error("Vault asked for a passphrase snapshot")
		return nil, errors.New("no")
	}
	r, err := Restore(t.Context(), RestoreOptions{File: v1Snapshot, DataDir: target, Keys: k})
	require.NoError(t, err)
	require.Equal(t, time.Date(2026, 12, 3, 2, 15, 0, 0, time.UTC), r.Manifest.TakenAt)
	require.Equal(t, "v0.9.0", r.Manifest.ServerVersion)
	db, err := os.ReadFile(filepath.Join(target, DBName))
	require.NoError(t, err)
	require.Equal(t, "the database of a v1 passphrase snapshot", string(db))
	for _, f := range datadir.Files {
		got, err := os.ReadFile(filepath.Join(target, f.Name))
		require.NoError(t, err)
		require.Equal(t, "content of "+f.Name, string(got))
	}
}

// TestRestoreWithoutItsKey: a restore given only the other kind of key is
// refused saying which it needs, before anything is written; a Vault that
// cannot be reached is reported as such, not as a wrong passphrase.
func TestRestoreWithoutItsKey(t *testing.T) {
	vaultDown := errors.New("vault at http://127.0.0.1:1 is unreachable: check that it is running")
	cases := []struct {
		name string
		keys Keys
		want error
		msg  string
	}{
		{"no passphrase", Keys{Transit: func(context.Context, string) (keys.Wrapper, error) { return nil, vaultDown }}, ErrNeedPassphrase, "give its passphrase file"},
		{"nothing", Keys{}, ErrNeedPassphrase, "encrypted to a passphrase"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			parent := t.TempDir()
			_, err := Restore(t.Context(), RestoreOptions{File: v1Snapshot, DataDir: filepath.Join(parent, "a", "data"), Keys: tc.keys})
			require.ErrorIs(t, err, tc.want)
			require.ErrorContains(t, err, tc.msg)
			ents, err := os.ReadDir(parent)
			require.NoError(t, err)
			require.Empty(t, ents, "nothing written")
		})
	}
	// A Transit snapshot (its key ID is all that counts before the unwrap).
	transitFile := withKeyID(t, "vault-transit:cp-snapshot:v1")
	parent := t.TempDir()
	_, err := Restore(t.Context(), RestoreOptions{File: transitFile, DataDir: filepath.Join(parent, "data"), Keys: passphraseKeys(v1Passphrase)})
	require.ErrorIs(t, err, ErrNeedVault)
	require.ErrorContains(t, err, "vault-transit:cp-snapshot:v1")
	_, err = Restore(t.Context(), RestoreOptions{File: transitFile, DataDir: filepath.Join(parent, "data"),
		Keys: Keys{Transit: func(context.Context, string) (keys.Wrapper, error) { return nil, vaultDown }}})
	require.ErrorIs(t, err, ErrKeyUnavailable)
	require.ErrorContains(t, err, "is unreachable: check that it is running")
	require.NotContains(t, err.Error(), "passphrase")
	ents, err := os.ReadDir(parent)
	require.NoError(t, err)
	require.Empty(t, ents, "nothing written")
}

// withKeyID is the v1 snapshot with its header's key ID replaced (the key
// section is not bound to the body, as a rewrap needs).
func withKeyID(t *testing.T, keyID string) string {
	t.Helper()
	s, err := NewSaver(Config{DataDir: dataDir(t), DB: fakeDB("db"), Name: "controlplane"})
	require.NoError(t, err)
	f, _, err := s.Spool(t.Context(), fixedID{testWrapper(t), keyID})
	require.NoError(t, err)
	defer func() { _ = f.Close() }()
	p := filepath.Join(t.TempDir(), "transit.snap")
	out, err := os.Create(p)
	require.NoError(t, err)
	_, err = out.ReadFrom(f)
	require.NoError(t, err)
	require.NoError(t, out.Close())
	return p
}

// fixedID is a wrapper that names its key keyID.
type fixedID struct {
	keys.Wrapper
	id string
}

func (f fixedID) KeyID() string { return f.id }

// transitStub is what TransitFunc returns in these tests.
type transitStub struct{ keys.Wrapper }

// TestSaverWrapper: one encryption, a passphrase long enough, a Transit key
// only with a Vault; a Transit failure says so and wraps ErrKeyUnavailable.
func TestSaverWrapper(t *testing.T) {
	ctx := t.Context()
	noVault, err := NewSaver(Config{DataDir: t.TempDir(), DB: fakeDB("db"), Name: "controlplane"})
	require.NoError(t, err)
	_, err = noVault.Wrapper(ctx, Encryption{Passphrase: []byte(pass), TransitKey: "k"})
	require.ErrorIs(t, err, ErrBadEncryption)
	_, err = noVault.Wrapper(ctx, Encryption{Passphrase: []byte("short")})
	require.ErrorIs(t, err, keys.ErrWeakPassphrase)
	_, err = noVault.Wrapper(ctx, Encryption{})
	require.ErrorIs(t, err, keys.ErrWeakPassphrase)
	_, err = noVault.Wrapper(ctx, Encryption{TransitKey: "k"})
	require.ErrorIs(t, err, ErrKeyUnavailable)
	require.ErrorContains(t, err, "this control plane has no Vault")

	var asked string
	withVault, err := NewSaver(Config{DataDir: t.TempDir(), DB: fakeDB("db"), Name: "controlplane",
		Transit: func(_ context.Context, name string) (keys.Wrapper, error) {
			asked = name
			if name == "missing" {
				return nil, errors.New(`vault at http://v has no transit key "missing": create it`)
			}
			return transitStub{testWrapper(t)}, nil
		}})
	require.NoError(t, err)
	w, err := withVault.Wrapper(ctx, Encryption{TransitKey: "cp"})
	require.NoError(t, err)
	require.Equal(t, "cp", asked)
	require.IsType(t, transitStub{}, w)
	_, err = withVault.Wrapper(ctx, Encryption{TransitKey: "missing"})
	require.ErrorIs(t, err, ErrKeyUnavailable)
	require.ErrorContains(t, err, `has no transit key "missing": create it`)
	require.Equal(t, "vault-transit key=cp", Encryption{TransitKey: "cp"}.String())
	require.Equal(t, "passphrase", Encryption{Passphrase: []byte(pass)}.String())
}
