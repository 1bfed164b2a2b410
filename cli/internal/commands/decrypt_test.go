package commands

import (
	"bytes"
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/forlock/fleet/internal/artifact"
	"github.com/forlock/fleet/internal/keys"
)

// sealFile writes plain as an artifact encrypted under a fresh data key
// wrapped by the key file at kekPath (created if missing) and returns its
// path.
func sealFile(t *testing.T, kekPath string, plain []byte) string {
	t.Helper()
	kek, err := keys.LoadOrCreateFile(kekPath)
	require.NoError(t, err)
	dk, err := keys.NewDataKey()
	require.NoError(t, err)
	wrapped, err := kek.Wrap(context.Background(), dk)
	require.NoError(t, err)
	var buf bytes.Buffer
	w, err := artifact.NewWriter(&buf, artifact.Header{
		Kind: artifact.KindPostgres, Node: "web-1", Created: time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC),
		KeyID: kek.KeyID(), WrappedKey: wrapped, FileName: "postgres_20260301_100000.dump",
	}, dk)
	require.NoError(t, err)
	_, err = w.Write(plain)
	require.NoError(t, err)
	require.NoError(t, w.Close())
	p := filepath.Join(t.TempDir(), "postgres_20260301_100000.dump.zst.enc")
	require.NoError(t, os.WriteFile(p, buf.Bytes(), 0o600))
	return p
}

// damaged writes a copy of the artifact at p with one byte changed at off
// (from the end if negative).
func damaged(t *testing.T, p string, off int) string {
	t.Helper()
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	if off < 0 {
		off += len(b)
	}
	b[off] ^= 0x01
	q := filepath.Join(t.TempDir(), "flipped.enc")
	require.NoError(t, os.WriteFile(q, b, 0o600))
	return q
}

func TestDecrypt(t *testing.T) {
	dir := t.TempDir()
	kekPath := filepath.Join(dir, "backup-kek.json")
	plain := make([]byte, 3<<20+12345) // four 1 MiB segments
	_, err := rand.Read(plain)
	require.NoError(t, err)
	art := sealFile(t, kekPath, plain)
	otherKey := filepath.Join(dir, "other-kek.json")
	_, err = keys.LoadOrCreateFile(otherKey)
	require.NoError(t, err)
	openKey := filepath.Join(dir, "open-kek.json")
	raw, err := os.ReadFile(kekPath)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(openKey, raw, 0o600))
	require.NoError(t, os.Chmod(openKey, 0o644))
	stat, err := os.Stat(art)
	require.NoError(t, err)

	tests := []struct {
		name     string
		args     func(out string) []string
		wantCode int
		wantErr  []string
	}{
		{"to a file", func(out string) []string { return []string{art, "--key-file", kekPath, "-o", out} }, ExitOK,
			[]string{"decrypted " + art + ": postgres of node web-1 taken 2026-03-01 10:00:00Z (original file postgres_20260301_100000.dump)"}},
		{"flipped byte in the body", func(out string) []string {
			return []string{damaged(t, art, int(stat.Size())/2), "--key-file", kekPath, "-o", out}
		}, ExitFailure, []string{"is damaged (changed or truncated since it was written) and cannot be trusted", "was not written (the partial output was discarded)", "artifact corrupted"}},
		{"flipped last byte", func(out string) []string { return []string{damaged(t, art, -1), "--key-file", kekPath, "-o", out} },
			ExitFailure, []string{"is damaged", "artifact truncated", "partial output was discarded"}},
		{"flipped header byte", func(out string) []string { return []string{damaged(t, art, 20), "--key-file", kekPath, "-o", out} },
			ExitFailure, []string{"is damaged"}},
		{"wrong key", func(out string) []string { return []string{art, "--key-file", otherKey, "-o", out} }, ExitFailure,
			[]string{"wrong key: " + art + " was encrypted under key local:", "use the backup-kek.json of the control plane that made this backup", "was not written"}},
		{"key file readable by others", func(out string) []string { return []string{art, "--key-file", openKey, "-o", out} }, ExitFailure,
			[]string{"cannot use the key file", "run: chmod 600 " + openKey}},
		{"missing key file", func(out string) []string {
			return []string{art, "--key-file", filepath.Join(dir, "nope.json"), "-o", out}
		}, ExitFailure,
			[]string{"cannot use the key file", "no such file"}},
		{"missing artifact", func(out string) []string {
			return []string{filepath.Join(dir, "nope.enc"), "--key-file", kekPath, "-o", out}
		}, ExitFailure,
			[]string{"open artifact", "no such file"}},
		{"output is the artifact", func(string) []string { return []string{art, "--key-file", kekPath, "-o", art} }, ExitUsage,
			[]string{"is the artifact itself"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			outDir := t.TempDir()
			out := filepath.Join(outDir, "forlock.dump")
			// No connection settings at all: decrypt needs no control plane.
			code, stdout, stderr := run(t, nil, append([]string{"backup", "decrypt"}, tt.args(out)...)...)
			require.Equal(t, tt.wantCode, code, "stderr: %s", stderr)
			require.Empty(t, stdout)
			for _, want := range tt.wantErr {
				require.Contains(t, stderr, want)
			}
			entries, err := os.ReadDir(outDir)
			require.NoError(t, err)
			if tt.wantCode != ExitOK {
				require.Empty(t, entries, "nothing may be left beside the output")
				return
			}
			require.Len(t, entries, 1, "no temporary file may be left")
			got, err := os.ReadFile(out)
			require.NoError(t, err)
			require.True(t, bytes.Equal(plain, got), "decrypted data differs")
			st, err := os.Stat(out)
			require.NoError(t, err)
			require.Equal(t, os.FileMode(0o600), st.Mode().Perm(), "plain data is readable by its owner only")
		})
	}
}

func TestDecryptToStdout(t *testing.T) {
	kekPath := filepath.Join(t.TempDir(), "backup-kek.json")
	plain := bytes.Repeat([]byte("forlock row\n"), 300_000)
	art := sealFile(t, kekPath, plain)

	code, stdout, stderr := run(t, nil, "backup", "decrypt", art, "--key-file", kekPath)
	require.Equal(t, ExitOK, code, stderr)
	require.Equal(t, string(plain), stdout)
	require.Contains(t, stderr, "bytes to standard output")

	code, _, stderr = run(t, nil, "backup", "decrypt", damaged(t, art, -1), "--key-file", kekPath)
	require.Equal(t, ExitFailure, code)
	require.Contains(t, stderr, "is damaged")
	require.True(t, strings.Contains(stderr, "nothing was written to standard output") ||
		strings.Contains(stderr, "were already written to standard output: they are partial output, discard them"), stderr)
}
