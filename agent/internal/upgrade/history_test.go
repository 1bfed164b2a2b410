package upgrade

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func rel(apiImage string) Release {
	return Release{RecordedAt: time.Now(), Services: []ServiceRelease{
		{Service: "postgres", ImageID: "sha256:p"}, {Service: "api", Image: "reg/forlock/api:" + apiImage, ImageID: "sha256:" + apiImage},
	}}
}

func TestHistory(t *testing.T) {
	h := NewHistory(filepath.Join(t.TempDir(), HistoryFile))
	_, err := h.Target(rel("v1").ID(), "")
	require.EqualError(t, err, "no earlier release is recorded on this node (current "+rel("v1").ID()+"): nothing to roll back to")

	require.NoError(t, h.Add(rel("v1")))
	require.NoError(t, h.Add(rel("v1")), "the same release twice in a row is kept once")
	require.NoError(t, h.Add(rel("v2")))
	rs, err := h.load()
	require.NoError(t, err)
	require.Len(t, rs, 2)
	st, err := os.Stat(h.path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm(), "container configs hold environment variables")

	// Running v2: the previous release is v1; by ID, any recorded one.
	got, err := h.Target(rel("v2").ID(), "")
	require.NoError(t, err)
	require.Equal(t, rel("v1").ID(), got.ID())
	got, err = h.Target(rel("v1").ID(), rel("v2").ID())
	require.NoError(t, err)
	require.Equal(t, rel("v2").ID(), got.ID())
	_, err = h.Target(rel("v2").ID(), "abcdefabcdef")
	require.ErrorContains(t, err, "release abcdefabcdef is not recorded on this node")

	for i := range maxHistory + 5 {
		require.NoError(t, h.Add(rel("v"+string(rune('a'+i)))))
	}
	rs, err = h.load()
	require.NoError(t, err)
	require.Len(t, rs, maxHistory, "bounded")

	require.NoError(t, os.WriteFile(h.path, []byte("{broken"), 0o600))
	_, err = h.Target("x", "")
	require.ErrorContains(t, err, "move it away to start a new history")
}

func TestReleaseID(t *testing.T) {
	require.Len(t, rel("v1").ID(), 12)
	require.NotEqual(t, rel("v1").ID(), rel("v2").ID())
	again := rel("v1")
	again.RecordedAt = again.RecordedAt.Add(time.Hour)
	require.Equal(t, rel("v1").ID(), again.ID(), "content-derived: the time plays no part")
}
