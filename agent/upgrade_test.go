package agent

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/forlock/fleet/agent/internal/upgrade"
)

func rel(apiImage string) upgrade.Release {
	return upgrade.Release{RecordedAt: time.Now(), Services: []upgrade.ServiceRelease{
		{Service: "postgres", ImageID: "sha256:p"}, {Service: "api", Image: "reg/forlock/api:" + apiImage, ImageID: "sha256:" + apiImage},
	}}
}

func TestReleaseHistory(t *testing.T) {
	h := &releaseHistory{path: filepath.Join(t.TempDir(), releasesFile)}
	_, err := h.target(releaseID(rel("v1")), "")
	require.EqualError(t, err, "no earlier release is recorded on this node (current "+releaseID(rel("v1"))+"): nothing to roll back to")

	require.NoError(t, h.add(rel("v1")))
	require.NoError(t, h.add(rel("v1")), "the same release twice in a row is kept once")
	require.NoError(t, h.add(rel("v2")))
	rs, err := h.load()
	require.NoError(t, err)
	require.Len(t, rs, 2)
	st, err := os.Stat(h.path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm(), "container configs hold environment variables")

	// Running v2: the previous release is v1; by ID, any recorded one.
	got, err := h.target(releaseID(rel("v2")), "")
	require.NoError(t, err)
	require.Equal(t, releaseID(rel("v1")), releaseID(got))
	got, err = h.target(releaseID(rel("v1")), releaseID(rel("v2")))
	require.NoError(t, err)
	require.Equal(t, releaseID(rel("v2")), releaseID(got))
	_, err = h.target(releaseID(rel("v2")), "abcdefabcdef")
	require.ErrorContains(t, err, "release abcdefabcdef is not recorded on this node")

	for i := range maxLocalReleases + 5 {
		require.NoError(t, h.add(rel("v"+string(rune('a'+i)))))
	}
	rs, err = h.load()
	require.NoError(t, err)
	require.Len(t, rs, maxLocalReleases, "bounded")

	require.NoError(t, os.WriteFile(h.path, []byte("{broken"), 0o600))
	_, err = h.target("x", "")
	require.ErrorContains(t, err, "move it away to start a new history")
}

func TestServiceContainersAndReleaseID(t *testing.T) {
	require.Equal(t, map[string]string{"api": "n1-api", "postgres": "n1-postgres", "redis": "redis", "nginx": "n1-nginx"},
		serviceContainers([]string{"n1-api", "n1-postgres", "redis", "n1-nginx"}))
	require.Empty(t, serviceContainers(nil), "the upgrader's default forlock-<service> applies")
	require.Len(t, releaseID(rel("v1")), 12)
	require.NotEqual(t, releaseID(rel("v1")), releaseID(rel("v2")))
	again := rel("v1")
	again.RecordedAt = again.RecordedAt.Add(time.Hour)
	require.Equal(t, releaseID(rel("v1")), releaseID(again), "content-derived: the time plays no part")
}
