package store

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

func TestReleaseHistory(t *testing.T) {
	s, _ := openTest(t)
	rel := func(id string) NodeRelease {
		return NodeRelease{NodeID: "n1", Release: &forlockv1.Release{Id: id, Services: []*forlockv1.ServiceImage{{Service: "api"}}}}
	}
	ids := func() []string {
		rs, err := s.Releases("n1")
		require.NoError(t, err)
		var out []string
		for _, r := range rs {
			out = append(out, r.GetId())
		}
		return out
	}
	// First upgrade: the release before and the new one.
	require.NoError(t, s.SaveJobs(JobWrite{Releases: []NodeRelease{rel("v1"), rel("v2")}}))
	require.Equal(t, []string{"v2", "v1"}, ids())
	// A rolled-back upgrade reports v2 before and after: nothing changes.
	require.NoError(t, s.SaveJobs(JobWrite{Releases: []NodeRelease{rel("v2"), rel("v2")}}))
	require.Equal(t, []string{"v2", "v1"}, ids())
	// A rollback to v1 is a new entry.
	require.NoError(t, s.SaveJobs(JobWrite{Releases: []NodeRelease{rel("v2"), rel("v1")}}))
	require.Equal(t, []string{"v1", "v2", "v1"}, ids())

	for i := range MaxReleases + 3 {
		require.NoError(t, s.SaveJobs(JobWrite{Releases: []NodeRelease{rel(fmt.Sprintf("r%02d", i))}}))
	}
	got := ids()
	require.Len(t, got, MaxReleases, "the oldest are dropped")
	require.Equal(t, fmt.Sprintf("r%02d", MaxReleases+2), got[0])
}
