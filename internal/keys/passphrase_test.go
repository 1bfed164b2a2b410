package keys

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestPassphrase: a key wrapped under a passphrase unwraps with the same
// passphrase from scratch (salt and cost read from the key ID), not with
// another; a key ID asking for absurd scrypt costs is refused before any
// work; short passphrases are refused.
func TestPassphrase(t *testing.T) {
	w, err := NewPassphrase([]byte("twelve chars or more"))
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(w.KeyID(), "scrypt:N=32768,r=8,p=1:"), w.KeyID())
	dk, err := NewDataKey()
	require.NoError(t, err)
	wrapped, err := w.Wrap(t.Context(), dk)
	require.NoError(t, err)

	got, err := OpenPassphrase([]byte("twelve chars or more")).Unwrap(t.Context(), w.KeyID(), wrapped)
	require.NoError(t, err)
	require.Equal(t, dk, got)
	_, err = OpenPassphrase([]byte("twelve chars or less")).Unwrap(t.Context(), w.KeyID(), wrapped)
	require.ErrorIs(t, err, ErrWrongKey)
	require.ErrorContains(t, err, "wrong passphrase")

	salt := w.KeyID()[strings.LastIndex(w.KeyID(), ":")+1:]
	for _, id := range []string{"scrypt:N=1073741824,r=8,p=1:" + salt, "scrypt:N=32768,r=8,p=1:00", "local:1a2b3c4d", "scrypt:N=32768,r=99,p=1:" + salt,
		"scrypt:N=1048576,r=32,p=1:" + salt, "scrypt:N=1048576,r=8,p=16:" + salt} {
		_, err = OpenPassphrase([]byte("twelve chars or more")).Unwrap(t.Context(), id, wrapped)
		require.ErrorIs(t, err, ErrUnknownKey, id)
	}
	_, err = NewPassphrase([]byte("short"))
	require.ErrorIs(t, err, ErrWeakPassphrase)
}

// TestReadPassphraseFile: a file others can read is refused with the fix;
// a 0600 one is read without its line break.
func TestReadPassphraseFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "pass")
	require.NoError(t, os.WriteFile(p, []byte("twelve chars or more\n"), 0o600))
	got, err := ReadPassphraseFile(p)
	require.NoError(t, err)
	require.Equal(t, "twelve chars or more", string(got))
	require.NoError(t, os.Chmod(p, 0o640))
	_, err = ReadPassphraseFile(p)
	require.ErrorIs(t, err, ErrInsecureKeyFile)
	require.ErrorContains(t, err, "chmod 600")
}
