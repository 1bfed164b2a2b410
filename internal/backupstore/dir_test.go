package backupstore

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/forlock/fleet/test/testenv"
)

func newTestDir(t *testing.T) (*Dir, string) {
	t.Helper()
	root := filepath.Join(t.TempDir(), "backups")
	d, err := NewDir(DirConfig{Root: root})
	require.NoError(t, err)
	return d, root
}

// regularFiles lists the regular files under dir, relative to it.
func regularFiles(t *testing.T, dir string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && p == dir {
				return nil
			}
			return err
		}
		if e.Type().IsRegular() {
			rel, _ := filepath.Rel(dir, p)
			files = append(files, rel)
		}
		return nil
	})
	require.NoError(t, err)
	return files
}

func TestNewDir(t *testing.T) {
	tests := []struct {
		root, wantErr string
	}{
		{"", ""},
		{"/srv/backups", ""},
		{"backups", `backup directory "backups": must be an absolute path`},
		{"/srv/../etc", `must be a clean path (did you mean "/etc"?)`},
		{"/srv/backups/", `must be a clean path (did you mean "/srv/backups"?)`},
	}
	for _, tt := range tests {
		t.Run(tt.root, func(t *testing.T) {
			d, err := NewDir(DirConfig{Root: tt.root})
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			want := tt.root
			if want == "" {
				want = DefaultDir
			}
			require.Equal(t, filepath.Join(want, "n/a"), d.Location("n/a"))
		})
	}
}

func TestDirRoundTrip(t *testing.T) {
	ctx := context.Background()
	d, root := newTestDir(t)
	data := bytes.Repeat([]byte("forlock "), 100_000)

	n, err := d.Put(ctx, "node-1/postgres_20260101_120000.dump", bytes.NewReader(data))
	require.NoError(t, err)
	require.Equal(t, int64(len(data)), n)

	for p, mode := range map[string]fs.FileMode{
		root:             fs.ModeDir | 0o700,
		root + "/node-1": fs.ModeDir | 0o700,
		root + "/node-1/postgres_20260101_120000.dump": 0o600,
	} {
		fi, err := os.Stat(p)
		require.NoError(t, err)
		require.Equal(t, mode, fi.Mode(), p)
	}

	size, err := d.Stat(ctx, "node-1/postgres_20260101_120000.dump")
	require.NoError(t, err)
	require.Equal(t, int64(len(data)), size)

	rc, size, err := d.Open(ctx, "node-1/postgres_20260101_120000.dump")
	require.NoError(t, err)
	got, err := io.ReadAll(rc)
	require.NoError(t, err)
	require.NoError(t, rc.Close())
	require.Equal(t, int64(len(data)), size)
	require.Equal(t, data, got)

	// A second Put replaces the artifact whole.
	_, err = d.Put(ctx, "node-1/postgres_20260101_120000.dump", bytes.NewReader([]byte("v2")))
	require.NoError(t, err)
	size, err = d.Stat(ctx, "node-1/postgres_20260101_120000.dump")
	require.NoError(t, err)
	require.Equal(t, int64(2), size)
	require.Equal(t, []string{"node-1/postgres_20260101_120000.dump"}, regularFiles(t, root))

	require.NoError(t, d.Delete(ctx, "node-1/postgres_20260101_120000.dump"))
	require.NoError(t, d.Delete(ctx, "node-1/postgres_20260101_120000.dump"), "deleting twice")
	_, err = d.Stat(ctx, "node-1/postgres_20260101_120000.dump")
	require.ErrorIs(t, err, ErrNotFound)
	require.ErrorContains(t, err, root+"/node-1/postgres_20260101_120000.dump")
	_, _, err = d.Open(ctx, "node-1/postgres_20260101_120000.dump")
	require.ErrorIs(t, err, ErrNotFound)
	require.ErrorContains(t, d.Delete(ctx, "node-1"), "is a directory, not an artifact")
}

func TestDirMissingRoot(t *testing.T) {
	ctx := context.Background()
	d, _ := newTestDir(t)
	_, err := d.Stat(ctx, "x")
	require.ErrorIs(t, err, ErrNotFound)
	_, _, err = d.Open(ctx, "x")
	require.ErrorIs(t, err, ErrNotFound)
	require.NoError(t, d.Delete(ctx, "x"))
}

func TestDirRefusesTraversal(t *testing.T) {
	ctx := context.Background()
	base := t.TempDir()
	root := filepath.Join(base, "backups")
	d, err := NewDir(DirConfig{Root: root})
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(base, "secret"), []byte("s"), 0o600))

	for _, name := range []string{"../secret", "/etc/passwd", "a/../../secret", "a/./b", "..", ".hidden", "a//b"} {
		t.Run(name, func(t *testing.T) {
			_, err := d.Put(ctx, name, bytes.NewReader([]byte("x")))
			require.ErrorIs(t, err, ErrInvalidName)
			_, _, err = d.Open(ctx, name)
			require.ErrorIs(t, err, ErrInvalidName)
			_, err = d.Stat(ctx, name)
			require.ErrorIs(t, err, ErrInvalidName)
			require.ErrorIs(t, d.Delete(ctx, name), ErrInvalidName)
		})
	}
	require.Equal(t, []string{"secret"}, regularFiles(t, base), "nothing written or removed outside")
}

// A symlink planted under the root cannot lead a name outside it.
func TestDirRefusesSymlinkEscape(t *testing.T) {
	ctx := context.Background()
	base := t.TempDir()
	outside := filepath.Join(base, "outside")
	require.NoError(t, os.Mkdir(outside, 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(outside, "secret"), []byte("s"), 0o600))
	root := filepath.Join(base, "backups")
	require.NoError(t, os.Mkdir(root, 0o700))
	require.NoError(t, os.Symlink(outside, filepath.Join(root, "link")))
	d, err := NewDir(DirConfig{Root: root})
	require.NoError(t, err)

	_, err = d.Put(ctx, "link/new", bytes.NewReader([]byte("x")))
	require.ErrorContains(t, err, "path escapes from parent")
	_, _, err = d.Open(ctx, "link/secret")
	require.ErrorContains(t, err, "path escapes from parent")
	_, err = d.Stat(ctx, "link/secret")
	require.ErrorContains(t, err, "path escapes from parent")
	require.ErrorContains(t, d.Delete(ctx, "link/secret"), "path escapes from parent")
	require.Equal(t, []string{"secret"}, regularFiles(t, outside))
}

// failingReader returns n bytes, then err.
type failingReader struct {
	n   int
	err error
}

func (r *failingReader) Read(p []byte) (int, error) {
	if r.n == 0 {
		return 0, r.err
	}
	k := min(len(p), r.n)
	clear(p[:k])
	r.n -= k
	return k, nil
}

func TestDirFailedPutLeavesNothing(t *testing.T) {
	errSource := errors.New("pg_dump exited 1")
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name    string
		ctx     context.Context
		r       io.Reader
		wantErr error
	}{
		{"source fails", context.Background(), &failingReader{n: 3 << 20, err: errSource}, errSource},
		{"canceled", canceled, bytes.NewReader([]byte("x")), context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, root := newTestDir(t)
			_, err := d.Put(context.Background(), "keep", bytes.NewReader([]byte("old")))
			require.NoError(t, err)

			_, err = d.Put(tt.ctx, "keep", tt.r)
			require.ErrorIs(t, err, tt.wantErr)
			require.ErrorContains(t, err, "write backup "+root+"/keep")
			require.Equal(t, []string{"keep"}, regularFiles(t, root), "only the earlier artifact remains")
			got, err := os.ReadFile(filepath.Join(root, "keep"))
			require.NoError(t, err)
			require.Equal(t, "old", string(got))
		})
	}
}

// TestDirFull fills a real 1 MiB tmpfs.
func TestDirFull(t *testing.T) {
	mnt := t.TempDir()
	testenv.RequireTmpfs(t, mnt, "1m")

	ctx := context.Background()
	root := filepath.Join(mnt, "backups")
	d, err := NewDir(DirConfig{Root: root})
	require.NoError(t, err)

	_, err = d.Put(ctx, "node-1/postgres_20260101_120000.dump", &failingReader{n: 4 << 20, err: io.EOF})
	require.ErrorIs(t, err, ErrFull)
	require.ErrorIs(t, err, unix.ENOSPC)
	require.ErrorContains(t, err, "backup destination full: no space left for "+root+"/node-1/postgres_20260101_120000.dump")
	require.Empty(t, regularFiles(t, mnt), "the partial file is removed")

	var st unix.Statfs_t
	require.NoError(t, unix.Statfs(mnt, &st))
	require.Equal(t, st.Blocks, st.Bfree, "the tmpfs is empty again")

	// Space is back: a small artifact fits.
	_, err = d.Put(ctx, "node-1/small", bytes.NewReader([]byte("ok")))
	require.NoError(t, err)
}

func TestRemoveTemps(t *testing.T) {
	dir := t.TempDir()
	d, err := NewDir(DirConfig{Root: dir})
	require.NoError(t, err)
	// A finished artifact and an interrupted Put's temporary file.
	_, err = d.Put(context.Background(), "node-1/postgres_20260101_000000.dump.zst.enc", strings.NewReader("done"))
	require.NoError(t, err)
	tmp := filepath.Join(dir, "node-1", ".redis_20260101_000000.rdb.zst.enc.tmp-0123456789abcdef")
	require.NoError(t, os.WriteFile(tmp, []byte("partial"), 0o600))
	// Names that only look alike stay.
	keep := filepath.Join(dir, "node-1", ".notes.tmp-xyz")
	require.NoError(t, os.WriteFile(keep, []byte("mine"), 0o600))

	removed, err := d.RemoveTemps()
	require.NoError(t, err)
	require.Equal(t, []string{tmp}, removed)
	require.NoFileExists(t, tmp)
	require.FileExists(t, keep)
	require.FileExists(t, filepath.Join(dir, "node-1", "postgres_20260101_000000.dump.zst.enc"))

	missing, err := NewDir(DirConfig{Root: filepath.Join(dir, "absent")})
	require.NoError(t, err)
	removed, err = missing.RemoveTemps()
	require.NoError(t, err)
	require.Empty(t, removed)
}
