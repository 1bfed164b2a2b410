package keys_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/forlock/fleet/internal/keys"
)

func TestNewDataKey(t *testing.T) {
	a, err := keys.NewDataKey()
	require.NoError(t, err)
	b, err := keys.NewDataKey()
	require.NoError(t, err)
	require.Len(t, a, keys.DataKeySize)
	require.NotEqual(t, a, b)
}

func TestLoadOrCreateFileCreatesOnceWithMode0600(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "kek.json")
	f1, err := keys.LoadOrCreateFile(path)
	require.NoError(t, err)
	st, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	require.True(t, strings.HasPrefix(f1.KeyID(), "local:"))
	require.Len(t, f1.KeyID(), len("local:")+8)

	f2, err := keys.LoadOrCreateFile(path)
	require.NoError(t, err)
	require.Equal(t, f1.KeyID(), f2.KeyID(), "second call loads, does not replace")

	entries, err := os.ReadDir(filepath.Dir(path))
	require.NoError(t, err)
	require.Len(t, entries, 1, "no temporary files left behind")
}

func TestLoadOrCreateFileConcurrentCreatorsAgree(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kek.json")
	ids := make([]string, 8)
	var wg sync.WaitGroup
	for i := range ids {
		wg.Go(func() {
			f, err := keys.LoadOrCreateFile(path)
			if err == nil {
				ids[i] = f.KeyID()
			}
		})
	}
	wg.Wait()
	for _, id := range ids {
		require.Equal(t, ids[0], id)
	}
	require.NotEmpty(t, ids[0])
}

func TestWrapUnwrapRoundTrip(t *testing.T) {
	ctx := context.Background()
	f, err := keys.LoadOrCreateFile(filepath.Join(t.TempDir(), "kek.json"))
	require.NoError(t, err)
	dk, err := keys.NewDataKey()
	require.NoError(t, err)

	w1, err := f.Wrap(ctx, dk)
	require.NoError(t, err)
	w2, err := f.Wrap(ctx, dk)
	require.NoError(t, err)
	require.NotEqual(t, w1, w2, "random nonce per wrap")
	require.Len(t, w1, 1+12+keys.DataKeySize+16)

	got, err := f.Unwrap(ctx, f.KeyID(), w1)
	require.NoError(t, err)
	require.Equal(t, dk, got)
}

func TestUnwrapRefusals(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	f, err := keys.LoadOrCreateFile(filepath.Join(dir, "a.json"))
	require.NoError(t, err)
	other, err := keys.LoadOrCreateFile(filepath.Join(dir, "b.json"))
	require.NoError(t, err)
	dk, err := keys.NewDataKey()
	require.NoError(t, err)
	wrapped, err := f.Wrap(ctx, dk)
	require.NoError(t, err)

	t.Run("unknown key ID names the ID", func(t *testing.T) {
		_, err := other.Unwrap(ctx, f.KeyID(), wrapped)
		require.ErrorIs(t, err, keys.ErrUnknownKey)
		require.ErrorContains(t, err, f.KeyID())
		require.ErrorContains(t, err, other.KeyID())
	})
	t.Run("vault key ID is unknown to a local file", func(t *testing.T) {
		_, err := f.Unwrap(ctx, "vault-transit:forlock:v3", wrapped)
		require.ErrorIs(t, err, keys.ErrUnknownKey)
		require.ErrorContains(t, err, "vault-transit:forlock:v3")
	})
	t.Run("flipped byte", func(t *testing.T) {
		for i := range wrapped {
			bad := bytes.Clone(wrapped)
			bad[i] ^= 0x01
			_, err := f.Unwrap(ctx, f.KeyID(), bad)
			require.ErrorIs(t, err, keys.ErrWrongKey, "byte %d", i)
		}
	})
	t.Run("truncated", func(t *testing.T) {
		for _, n := range []int{0, 1, 20, len(wrapped) - 1} {
			_, err := f.Unwrap(ctx, f.KeyID(), wrapped[:n])
			require.ErrorIs(t, err, keys.ErrWrongKey, "length %d", n)
		}
	})
}

func TestLoadFileRefusals(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.json")
	_, err := keys.LoadOrCreateFile(good)
	require.NoError(t, err)
	content, err := os.ReadFile(good)
	require.NoError(t, err)

	write := func(t *testing.T, name, body string, mode os.FileMode) string {
		t.Helper()
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(body), mode))
		require.NoError(t, os.Chmod(p, mode))
		return p
	}

	tests := []struct {
		name, body string
		mode       os.FileMode
		want       string
	}{
		{"group readable", string(content), 0o640, "chmod 600"},
		{"world readable", string(content), 0o604, "mode 0604"},
		{"not json", "hello", 0o600, "parse"},
		{"unknown field", `{"version":1,"key_id":"x","key":"","extra":1}`, 0o600, "unknown field"},
		{"wrong version", strings.Replace(string(content), `"version":1`, `"version":2`, 1), 0o600, "version 2"},
		{"short key", `{"version":1,"key_id":"local:00000000","key":"AAAA"}`, 0o600, "3 bytes"},
		{"id mismatch", strings.Replace(string(content), `"key_id":"local:`, `"key_id":"local:f`, 1), 0o600, "does not match"},
		{"trailing data", string(content) + "{}", 0o600, "after the JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := write(t, strings.ReplaceAll(tt.name, " ", "_"), tt.body, tt.mode)
			_, err := keys.LoadFile(p)
			require.ErrorContains(t, err, tt.want)
			_, err = keys.LoadOrCreateFile(p)
			require.ErrorContains(t, err, tt.want, "LoadOrCreateFile never replaces a bad file")
		})
	}

	t.Run("insecure is ErrInsecureKeyFile", func(t *testing.T) {
		p := write(t, "insecure", string(content), 0o644)
		_, err := keys.LoadFile(p)
		require.ErrorIs(t, err, keys.ErrInsecureKeyFile)
	})
	t.Run("missing file is not created by LoadFile", func(t *testing.T) {
		p := filepath.Join(dir, "missing.json")
		_, err := keys.LoadFile(p)
		require.ErrorIs(t, err, os.ErrNotExist)
		require.NoFileExists(t, p)
	})
	t.Run("directory", func(t *testing.T) {
		p := filepath.Join(dir, "adir")
		require.NoError(t, os.Mkdir(p, 0o700))
		_, err := keys.LoadFile(p)
		require.ErrorContains(t, err, "not a regular file")
	})
}
