package backup

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/forlock/fleet/internal/artifact"
)

// baseTar builds a tar from name/body pairs; a name ending in "/" is a
// directory, "->" makes a symlink.
func baseTar(tb testing.TB, entries ...string) []byte {
	tb.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for i := 0; i+1 < len(entries); i += 2 {
		name, body := entries[i], entries[i+1]
		h := &tar.Header{Name: name, Mode: 0o600, Uid: 999, Gid: 999, Typeflag: tar.TypeReg, Size: int64(len(body))}
		switch {
		case strings.HasSuffix(name, "/"):
			h.Typeflag, h.Size, h.Mode = tar.TypeDir, 0, 0o700
		case strings.HasPrefix(body, "->"):
			h.Typeflag, h.Size, h.Linkname = tar.TypeSymlink, 0, strings.TrimPrefix(body, "->")
		}
		require.NoError(tb, tw.WriteHeader(h))
		if h.Typeflag == tar.TypeReg {
			_, err := tw.Write([]byte(body))
			require.NoError(tb, err)
		}
	}
	require.NoError(tb, tw.Close())
	return b.Bytes()
}

var goodBase = []string{"backup_label", "START WAL LOCATION: 0/2000028\n", "PG_VERSION", "15\n", "global/", "", "global/pg_control", "ctl", "./pg_wal/", "", "./pg_wal/000000010000000000000002", "wal"}

func TestStageTar(t *testing.T) {
	var out bytes.Buffer
	info, err := stageTar(&out, bytes.NewReader(baseTar(t, goodBase...)), incomingDir)
	require.NoError(t, err)
	require.Equal(t, "15", info.version)
	tr := tar.NewReader(&out)
	var names []string
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		names = append(names, h.Name)
		if h.Name == incomingDir+"/" {
			require.Equal(t, 999, h.Uid, "the staging directory is owned as the backup's files")
			require.Equal(t, int64(0o700), h.Mode)
		}
	}
	require.Equal(t, []string{incomingDir + "/", incomingDir + "/backup_label", incomingDir + "/PG_VERSION", incomingDir + "/global/",
		incomingDir + "/global/pg_control", incomingDir + "/pg_wal/", incomingDir + "/pg_wal/000000010000000000000002"}, names)

	for _, tt := range []struct {
		name    string
		entries []string
		want    string
	}{
		{"parent", append(slices.Clone(goodBase), "../escape", "x"), `entry "../escape": not a clean name`},
		{"nested parent", append(slices.Clone(goodBase), "base/../../escape", "x"), "not a clean name"},
		{"absolute", append(slices.Clone(goodBase), "/etc/cron.d/x", "x"), "not a clean name"},
		{"symlink", append(slices.Clone(goodBase), "pg_wal2", "->/etc"), "a base backup holds only files and directories"},
		{"our own directory", append(slices.Clone(goodBase), previousDir+"/x", "x"), "not a clean name"},
		{"no label", goodBase[2:], "no backup_label in the tar"},
		{"no control file", append(slices.Clone(goodBase[:4]), goodBase[8:]...), "no global/pg_control in the tar"},
		{"huge PG_VERSION", append([]string{"PG_VERSION", strings.Repeat("1", 100)}, goodBase[4:]...), "PG_VERSION of 100 bytes"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := stageTar(io.Discard, bytes.NewReader(baseTar(t, tt.entries...)), incomingDir)
			require.ErrorIs(t, err, artifact.ErrCorrupted)
			require.ErrorContains(t, err, tt.want)
		})
	}
	_, err = stageTar(io.Discard, strings.NewReader("not a tar at all, just some text that is long enough to be read as a header block"), incomingDir)
	require.ErrorIs(t, err, artifact.ErrCorrupted)
}

// FuzzStageTar: whatever the bytes, stageTar does not panic, and what it
// accepts it writes only as files and directories under the staging
// directory.
func FuzzStageTar(f *testing.F) {
	f.Add(baseTar(f, goodBase...))
	f.Add(baseTar(f, append(slices.Clone(goodBase), "../x", "y")...))
	f.Add([]byte("garbage"))
	f.Fuzz(func(t *testing.T, in []byte) {
		var out bytes.Buffer
		if _, err := stageTar(&out, bytes.NewReader(in), incomingDir); err != nil {
			return
		}
		tr := tar.NewReader(&out)
		for {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				return
			}
			if err != nil {
				t.Fatalf("stageTar wrote a broken tar: %v", err)
			}
			if !strings.HasPrefix(h.Name, incomingDir+"/") || slices.Contains(strings.Split(h.Name, "/"), "..") {
				t.Fatalf("entry %q outside %s", h.Name, incomingDir)
			}
			if h.Typeflag != tar.TypeReg && h.Typeflag != tar.TypeDir {
				t.Fatalf("entry %q of type %q", h.Name, h.Typeflag)
			}
		}
	})
}
