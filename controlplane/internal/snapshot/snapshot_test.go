package snapshot

import (
	"archive/tar"
	"bytes"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"

	"github.com/forlock/fleet/controlplane/internal/datadir"
	"github.com/forlock/fleet/internal/artifact"
	"github.com/forlock/fleet/internal/keys"
)

const pass = "a passphrase long enough"

// wrapper is the one passphrase key of these tests: scrypt is slow under
// -race, so its key is derived once; it unwraps what it wrapped without
// deriving again. The API's tests open snapshots with OpenPassphrase.
var wrapper = sync.OnceValues(func() (*keys.Passphrase, error) { return keys.NewPassphrase([]byte(pass)) })

func testWrapper(t *testing.T) *keys.Passphrase {
	t.Helper()
	w, err := wrapper()
	require.NoError(t, err)
	return w
}

// fakeDB is a database whose copy is fixed bytes.
type fakeDB []byte

func (d fakeDB) SnapshotView(fn func(int64, io.WriterTo) error) error {
	return fn(int64(len(d)), bytes.NewReader(d))
}

// dataDir writes a data dir with every file a snapshot carries.
func dataDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, f := range datadir.Files {
		name := f.Name
		mode := fs.FileMode(0o600)
		if filepath.Ext(name) == ".crt" {
			mode = 0o644
		}
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte("content of "+name), mode))
		require.NoError(t, os.Chmod(filepath.Join(dir, name), mode))
	}
	return dir
}

// save makes a snapshot file of dir and returns its path.
func save(t *testing.T, dir string, cfgFile string) string {
	t.Helper()
	s, err := NewSaver(Config{DataDir: dir, DB: fakeDB("the database"), Name: "controlplane", ConfigFile: cfgFile, ServerVersion: "v9"})
	require.NoError(t, err)
	f, res, err := s.Spool(t.Context(), testWrapper(t))
	require.NoError(t, err)
	defer func() { _ = f.Close() }()
	raw, err := io.ReadAll(f)
	require.NoError(t, err)
	require.EqualValues(t, len(raw), res.Size)
	out := filepath.Join(t.TempDir(), FileName(res.TakenAt))
	require.NoError(t, os.WriteFile(out, raw, 0o600))
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, ents, len(datadir.Files), "the spool file is unlinked at once")
	return out
}

func opts(t *testing.T, file, dir, p string) RestoreOptions {
	t.Helper()
	var w keys.Wrapper = testWrapper(t)
	if p != pass {
		w = keys.OpenPassphrase([]byte(p))
	}
	return RestoreOptions{File: file, DataDir: dir, Keys: Keys{Passphrase: func() (keys.Wrapper, error) { return w, nil }}}
}

// TestRestoreRoundTrip: every file comes back with its content and mode
// (keys 0600), the config file as config.yaml, and the manifest says when.
func TestRestoreRoundTrip(t *testing.T) {
	src := dataDir(t)
	cfg := filepath.Join(t.TempDir(), "cp.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte("version: 1\n"), 0o640))
	file := save(t, src, cfg)
	target := filepath.Join(t.TempDir(), "new")
	r, err := Restore(t.Context(), opts(t, file, target, pass))
	require.NoError(t, err)
	require.Empty(t, r.Aside)
	require.Equal(t, "v9", r.Manifest.ServerVersion)
	require.WithinDuration(t, time.Now(), r.Manifest.TakenAt, time.Minute)
	for _, f := range datadir.Files {
		name := f.Name
		got, err := os.ReadFile(filepath.Join(target, name))
		require.NoError(t, err)
		require.Equal(t, "content of "+name, string(got))
		st, err := os.Stat(filepath.Join(target, name))
		require.NoError(t, err)
		want := fs.FileMode(0o600)
		if filepath.Ext(name) == ".crt" {
			want = 0o644
		}
		require.Equal(t, want, st.Mode().Perm(), name)
	}
	db, err := os.ReadFile(filepath.Join(target, DBName))
	require.NoError(t, err)
	require.Equal(t, "the database", string(db))
	st, err := os.Stat(filepath.Join(target, ConfigName))
	require.NoError(t, err)
	require.Equal(t, fs.FileMode(0o600), st.Mode().Perm(), "the config is restored 0600 whatever its mode was")
	dst, err := os.Stat(target)
	require.NoError(t, err)
	require.Equal(t, fs.FileMode(0o700), dst.Mode().Perm())
}

// untouched checks that dir holds exactly one file "old" with "old state",
// and that no staging dir was left beside it.
func untouched(t *testing.T, dir string) {
	t.Helper()
	got, err := os.ReadFile(filepath.Join(dir, "old"))
	require.NoError(t, err)
	require.Equal(t, "old state", string(got))
	ents, err := os.ReadDir(filepath.Dir(dir))
	require.NoError(t, err)
	require.Len(t, ents, 1, "only the data dir: no staging or aside dir left")
}

func oldDataDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "data")
	require.NoError(t, os.Mkdir(dir, 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "old"), []byte("old state"), 0o600))
	return dir
}

// TestRestoreRefusesBadFiles: a wrong passphrase, a truncated file and a
// changed byte are refused with what to do, and the data dir (forced or
// not) is as it was.
func TestRestoreRefusesBadFiles(t *testing.T) {
	file := save(t, dataDir(t), "")
	raw, err := os.ReadFile(file)
	require.NoError(t, err)
	write := func(b []byte) string {
		p := filepath.Join(t.TempDir(), "bad.snap")
		require.NoError(t, os.WriteFile(p, b, 0o600))
		return p
	}
	flipped := bytes.Clone(raw)
	flipped[len(flipped)/2] ^= 0x01
	cases := []struct {
		name, file, pass, msg string
	}{
		{"wrong passphrase", file, "not the passphrase at all", "wrong passphrase"},
		{"truncated", write(raw[:len(raw)*2/3]), pass, "damaged or incomplete"},
		{"cut at the end", write(raw[:len(raw)-1]), pass, "damaged or incomplete"},
		{"changed byte", write(flipped), pass, "damaged or incomplete"},
		{"not a snapshot", write([]byte("hello")), pass, "snapshot"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := oldDataDir(t)
			o := opts(t, tc.file, dir, tc.pass)
			o.Force = true
			_, err := Restore(t.Context(), o)
			require.ErrorContains(t, err, tc.msg)
			untouched(t, dir)

			fresh := filepath.Join(t.TempDir(), "fresh")
			_, err = Restore(t.Context(), opts(t, tc.file, fresh, tc.pass))
			require.Error(t, err)
			_, statErr := os.Stat(fresh)
			require.ErrorIs(t, statErr, fs.ErrNotExist)
		})
	}
}

// TestRestoreNonEmptyDataDir: refused without --force; with it the old
// dir is moved aside whole; while a control plane holds the database's lock,
// refused even with --force.
func TestRestoreNonEmptyDataDir(t *testing.T) {
	file := save(t, dataDir(t), "")
	dir := oldDataDir(t)
	_, err := Restore(t.Context(), opts(t, file, dir, pass))
	require.ErrorIs(t, err, ErrDataDirNotEmpty)
	require.ErrorContains(t, err, "--force")
	untouched(t, dir)

	db, err := bolt.Open(filepath.Join(dir, DBName), 0o600, nil)
	require.NoError(t, err)
	o := opts(t, file, dir, pass)
	o.Force = true
	_, err = Restore(t.Context(), o)
	require.ErrorIs(t, err, ErrInUse)
	require.NoError(t, db.Close())

	r, err := Restore(t.Context(), o)
	require.NoError(t, err)
	require.NotEmpty(t, r.Aside)
	got, err := os.ReadFile(filepath.Join(r.Aside, "old"))
	require.NoError(t, err)
	require.Equal(t, "old state", string(got), "the old data dir is kept")
	_, err = os.Stat(filepath.Join(dir, "ca.key"))
	require.NoError(t, err)
}

// hostile writes an artifact of kind snapshot, under the right passphrase,
// whose tar holds entries.
func hostile(t *testing.T, entries ...*tar.Header) string {
	t.Helper()
	w := testWrapper(t)
	dk, err := keys.NewDataKey()
	require.NoError(t, err)
	wrapped, err := w.Wrap(t.Context(), dk)
	require.NoError(t, err)
	var buf bytes.Buffer
	aw, err := artifact.NewWriter(&buf, artifact.Header{Kind: artifact.KindSnapshot, Node: "controlplane", Created: time.Now(),
		KeyID: w.KeyID(), WrappedKey: wrapped, FileName: "x.snap"}, dk)
	require.NoError(t, err)
	tw := tar.NewWriter(aw)
	m, err := encodeManifest(Manifest{Version: FormatVersion, TakenAt: time.Now()})
	require.NoError(t, err)
	require.NoError(t, tw.WriteHeader(&tar.Header{Name: ManifestName, Mode: 0o600, Size: int64(len(m))}))
	_, err = tw.Write(m)
	require.NoError(t, err)
	for _, h := range entries {
		require.NoError(t, tw.WriteHeader(h))
		_, err = tw.Write(make([]byte, h.Size))
		require.NoError(t, err)
	}
	require.NoError(t, tw.Close())
	require.NoError(t, aw.Close())
	p := filepath.Join(t.TempDir(), "hostile.snap")
	require.NoError(t, os.WriteFile(p, buf.Bytes(), 0o600))
	return p
}

// TestRestoreRefusesHostileEntries: a snapshot that decrypts but holds a
// path outside the data dir, a link, an unknown or repeated name, or no
// database is refused, and nothing is written anywhere.
func TestRestoreRefusesHostileEntries(t *testing.T) {
	cases := map[string][]*tar.Header{
		"path escape":   {{Name: "../escaped", Mode: 0o600, Size: 1}},
		"nested path":   {{Name: "sub/fleet.db", Mode: 0o600, Size: 1}},
		"symlink":       {{Name: "ca.key", Typeflag: tar.TypeSymlink, Linkname: "/etc/passwd"}},
		"unknown name":  {{Name: "authorized_keys", Mode: 0o600, Size: 1}},
		"repeated name": {{Name: DBName, Mode: 0o600, Size: 1}, {Name: DBName, Mode: 0o600, Size: 1}},
		"no database":   {{Name: "ca.key", Mode: 0o600, Size: 1}},
		"setuid mode":   {{Name: DBName, Mode: 0o4755, Size: 1}, {Name: "ca.key", Mode: 0o777, Size: 1}},
	}
	for name, entries := range cases {
		t.Run(name, func(t *testing.T) {
			parent := t.TempDir()
			dir := filepath.Join(parent, "data")
			_, err := Restore(t.Context(), opts(t, hostile(t, entries...), dir, pass))
			if name == "setuid mode" {
				// Accepted, but modes are cut to what each file may have.
				require.NoError(t, err)
				for _, f := range []string{DBName, "ca.key"} {
					st, err := os.Stat(filepath.Join(dir, f))
					require.NoError(t, err)
					require.Equal(t, fs.FileMode(0o600), st.Mode()&(fs.ModePerm|fs.ModeSetuid), f)
				}
				return
			}
			require.Error(t, err)
			ents, err := os.ReadDir(parent)
			require.NoError(t, err)
			require.Empty(t, ents, "nothing written")
		})
	}
}

// TestScheduledSnapshots: each scheduled save is a file named by its UTC
// time, mode 0600, that restores; beyond keep the oldest go, and files of
// other names in the directory are left alone. A bad schedule is refused.
func TestScheduledSnapshots(t *testing.T) {
	src := dataDir(t)
	at := time.Date(2026, 12, 3, 1, 30, 0, 0, time.UTC)
	s, err := NewSaver(Config{DataDir: src, DB: fakeDB("db"), Name: "controlplane", Now: func() time.Time { return at }})
	require.NoError(t, err)
	passFile := filepath.Join(t.TempDir(), "pass")
	require.NoError(t, os.WriteFile(passFile, []byte(pass+"\n"), 0o600))
	out := filepath.Join(t.TempDir(), "snaps")
	sched := Schedule{Cron: "@daily", Dir: out, Keep: 2, PassphraseFile: passFile}
	require.NoError(t, sched.Check())
	require.NoError(t, os.MkdirAll(out, 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(out, "notes.txt"), []byte("mine"), 0o600))
	var paths []string
	for range 3 {
		p, _, err := s.SaveScheduled(t.Context(), sched)
		require.NoError(t, err)
		paths = append(paths, p)
		at = at.Add(24 * time.Hour)
	}
	require.Equal(t, filepath.Join(out, "controlplane-20261203T013000Z.snap"), paths[0])
	ents, err := os.ReadDir(out)
	require.NoError(t, err)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	require.Equal(t, []string{"controlplane-20261204T013000Z.snap", "controlplane-20261205T013000Z.snap", "notes.txt"}, names)
	st, err := os.Stat(paths[2])
	require.NoError(t, err)
	require.Equal(t, fs.FileMode(0o600), st.Mode().Perm())
	_, err = Restore(t.Context(), opts(t, paths[2], filepath.Join(t.TempDir(), "r"), "not this one, but long"))
	require.ErrorContains(t, err, "wrong passphrase", "encrypted to the file's passphrase, not another")

	for _, bad := range []Schedule{
		{Cron: "daily", Dir: out, Keep: 1, PassphraseFile: passFile},
		{Cron: "@daily", Dir: "relative", Keep: 1, PassphraseFile: passFile},
		{Cron: "@daily", Dir: out, Keep: 0, PassphraseFile: passFile},
		{Cron: "@daily", Dir: out, Keep: 1},
	} {
		require.Error(t, bad.Check(), "%+v", bad)
	}
	require.NoError(t, (&Schedule{}).Check(), "off")
}
