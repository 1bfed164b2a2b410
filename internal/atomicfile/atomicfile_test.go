package atomicfile

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/forlock/fleet/test/testenv"
)

// temps lists the temporary files left in dir.
func temps(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	var out []string
	for _, e := range ents {
		if IsTemp(e.Name()) {
			out = append(out, e.Name())
		}
	}
	return out
}

func TestWriteReplacesAndLeavesNoTemp(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	require.NoError(t, Write(p, []byte("one"), 0o600))
	require.NoError(t, Write(p, []byte("two"), 0o640))
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	require.Equal(t, "two", string(b))
	st, err := os.Stat(p)
	require.NoError(t, err)
	require.Equal(t, fs.FileMode(0o640), st.Mode().Perm())
	require.Empty(t, temps(t, dir))

	// The positive twin of "no temp left": an aborted stream's temporary
	// file is seen by temps until Abort removes it.
	f, err := Create(p, 0o600)
	require.NoError(t, err)
	require.Equal(t, []string{filepath.Base(f.TempName())}, temps(t, dir))
	require.NoError(t, f.Abort())
	require.Empty(t, temps(t, dir))
	b, err = os.ReadFile(p)
	require.NoError(t, err)
	require.Equal(t, "two", string(b), "Abort must leave the old file")
}

// TestModeFromFirstByte checks the temporary file's mode before anything is
// written, under a umask that would narrow it and one that would widen a
// CreateTemp-style default: the mode is exactly perm from the start.
func TestModeFromFirstByte(t *testing.T) {
	for _, tc := range []struct {
		umask int
		perm  fs.FileMode
	}{
		{umask: 0o077, perm: 0o644}, // umask must not narrow a public cert
		{umask: 0o000, perm: 0o600}, // no umask must not widen a key
		{umask: 0o022, perm: 0o640},
	} {
		t.Run(fmt.Sprintf("umask%03o_perm%03o", tc.umask, tc.perm), func(t *testing.T) {
			old := unix.Umask(tc.umask)
			defer unix.Umask(old)
			dir := t.TempDir()
			p := filepath.Join(dir, "key.pem")
			f, err := Create(p, tc.perm)
			require.NoError(t, err)
			st, err := os.Stat(f.TempName())
			require.NoError(t, err)
			require.Equal(t, tc.perm, st.Mode().Perm(), "temporary file mode before the first byte")
			require.Zero(t, st.Size())
			_, err = f.Write([]byte("secret"))
			require.NoError(t, err)
			require.NoError(t, f.Commit())
			st, err = os.Stat(p)
			require.NoError(t, err)
			require.Equal(t, tc.perm, st.Mode().Perm(), "final mode")
		})
	}
}

func TestWriteNewRefusesToReplace(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "k")
	require.NoError(t, WriteNew(p, []byte("first"), 0o600))
	err := WriteNew(p, []byte("second"), 0o600)
	require.ErrorIs(t, err, fs.ErrExist)
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	require.Equal(t, "first", string(b))
	require.Empty(t, temps(t, dir))
}

func TestWriteErrorsKeepOldFile(t *testing.T) {
	dir := t.TempDir()
	// The destination is a directory: the rename fails after the data was
	// written and synced; the temporary file must go.
	sub := filepath.Join(dir, "sub")
	require.NoError(t, os.Mkdir(sub, 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(sub, "keep"), []byte("x"), 0o600))
	require.Error(t, Write(sub, []byte("x"), 0o600))
	require.Empty(t, temps(t, dir))
	// A missing directory is an error, not a MkdirAll.
	require.ErrorIs(t, Write(filepath.Join(dir, "missing", "f"), nil, 0o600), fs.ErrNotExist)
}

// TestDiskFullKeepsOldFile fills a 1 MiB tmpfs: the old file must stay
// byte for byte and no temporary file may be left behind.
func TestDiskFullKeepsOldFile(t *testing.T) {
	testenv.RequireRoot(t, "mounting a 1 MiB tmpfs")
	dir := t.TempDir()
	testenv.RequireTmpfs(t, dir, "1m")
	p := filepath.Join(dir, "state.json")
	old := bytes.Repeat([]byte("old "), 64<<10/4) // 64 KiB
	require.NoError(t, Write(p, old, 0o600))

	err := Write(p, bytes.Repeat([]byte("new!"), 2<<20/4), 0o600) // 2 MiB
	require.ErrorIs(t, err, unix.ENOSPC)
	b, rerr := os.ReadFile(p)
	require.NoError(t, rerr)
	require.Equal(t, old, b, "old content intact after a failed write")
	require.Empty(t, temps(t, dir))

	// Positive twin: the space is free again, so a write that fits works.
	require.NoError(t, Write(p, []byte("fits"), 0o600))
	b, err = os.ReadFile(p)
	require.NoError(t, err)
	require.Equal(t, "fits", string(b))
}

// TestConcurrentWriters: eight writers of one path and a reader; the
// reader only ever sees a whole version and the path ends as one whole
// version, with no temporary file left.
func TestConcurrentWriters(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	const writers, size = 8, 256 << 10
	versions := make(map[string]bool, writers)
	datas := make([][]byte, writers)
	for i := range writers {
		datas[i] = bytes.Repeat([]byte{byte('a' + i)}, size)
		versions[string(datas[i])] = true
	}
	require.NoError(t, Write(p, datas[0], 0o600))
	stop := make(chan struct{})
	var reads int
	readErr := make(chan error, 1)
	go func() {
		defer close(readErr)
		for {
			select {
			case <-stop:
				return
			default:
			}
			b, err := os.ReadFile(p)
			if err != nil || !versions[string(b)] {
				readErr <- fmt.Errorf("read a torn or missing version (%d bytes): %w", len(b), err)
				return
			}
			reads++
		}
	}()
	var wg sync.WaitGroup
	for i := range writers {
		wg.Go(func() {
			for range 5 {
				if err := Write(p, datas[i], 0o600); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	require.NoError(t, <-readErr)
	require.Positive(t, reads)
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	require.True(t, versions[string(b)], "final content is one whole version")
	require.Empty(t, temps(t, dir))
}

func TestIsTemp(t *testing.T) {
	require.True(t, IsTemp(".x.enc.tmp-0123456789abcdef"))
	require.False(t, IsTemp(".notes.tmp-xyz"))
	require.False(t, IsTemp("x.enc"))
}
