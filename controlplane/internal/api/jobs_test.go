package api

import (
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/forlock/fleet/internal/protocol"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// TestKindFilter: ListJobs takes no kind or a known one; a typo is
// InvalidArgument naming the kinds, not an empty list.
func TestKindFilter(t *testing.T) {
	for _, s := range []string{"", "health_check", "backup", "delete_backup"} {
		k, err := kindFilter(s)
		require.NoError(t, err, "%q", s)
		require.Equal(t, protocol.Kind(s), k)
	}
	for _, s := range []string{"bakup", "Backup", "tasks.v1"} {
		_, err := kindFilter(s)
		require.Equal(t, codes.InvalidArgument, status.Code(err), "%q", s)
		require.ErrorContains(t, err, `unknown job kind "`+s+`": use one of health_check, backup, restore,`)
	}
}

// TestListJobsPaging: pages of page_size follow each other through
// next_page_token without a gap or a repeat, newest first, and the last
// page has no token; a node filter applies across pages.
func TestListJobsPaging(t *testing.T) {
	s := newTestServer(t, serverOptions{})
	ctx := s.ctx()
	s.enroll("web-1", nil)
	s.enroll("web-2", nil)
	var submitted []string
	for i := range 7 {
		node := "web-1"
		if i%3 == 2 {
			node = "web-2"
		}
		resp, err := s.Jobs.SubmitJob(ctx, &forlockv1.SubmitJobRequest{
			Spec:   &forlockv1.JobSpec{Kind: &forlockv1.JobSpec_HealthCheck{HealthCheck: &forlockv1.HealthCheckSpec{}}},
			Target: &forlockv1.Target{Nodes: []string{node}},
		})
		require.NoError(t, err)
		require.True(t, resp.GetCreated())
		submitted = append(submitted, resp.GetJob().GetId())
	}
	all, err := s.Jobs.ListJobs(ctx, &forlockv1.ListJobsRequest{})
	require.NoError(t, err)
	require.Empty(t, all.GetNextPageToken())
	require.ElementsMatch(t, submitted, ids(all.GetJobs()))

	for _, tc := range []struct {
		node  string
		size  uint32
		pages []int
	}{
		{"", 3, []int{3, 3, 1}},
		{"", 7, []int{7}},
		{"", 1, []int{1, 1, 1, 1, 1, 1, 1}},
		{"web-1", 2, []int{2, 2, 1}},
		{"web-2", 2, []int{2}},
	} {
		var got []string
		var sizes []int
		token := ""
		for {
			page, err := s.Jobs.ListJobs(ctx, &forlockv1.ListJobsRequest{Node: tc.node, PageSize: tc.size, PageToken: token})
			require.NoError(t, err)
			sizes = append(sizes, len(page.GetJobs()))
			got = append(got, ids(page.GetJobs())...)
			token = page.GetNextPageToken()
			if token == "" {
				break
			}
			require.Less(t, len(sizes), 10, "paging does not end")
		}
		require.Equal(t, tc.pages, sizes, "node %q size %d", tc.node, tc.size)
		var want []string
		for _, j := range all.GetJobs() {
			if tc.node == "" || j.GetTasks()[0].GetNodeName() == tc.node {
				want = append(want, j.GetId())
			}
		}
		require.Equal(t, want, got, "node %q size %d: pages in order, no gap, no repeat", tc.node, tc.size)
	}
}

func ids(js []*forlockv1.Job) []string {
	out := make([]string, 0, len(js))
	for _, j := range js {
		out = append(out, j.GetId())
	}
	return out
}

// TestStatusAndCerts: the read-only services answer from the real store.
func TestStatusAndCerts(t *testing.T) {
	s := newTestServer(t, serverOptions{})
	st, err := s.Status.GetStatus(s.ctx(), &forlockv1.GetStatusRequest{})
	require.NoError(t, err)
	require.NotEmpty(t, st.GetDataDisk().GetDataDir())
	require.False(t, st.GetDataDisk().GetWritesRefused())
	s.enroll("web-1", nil)
	certs, err := s.Certs.ListCertificates(s.ctx(), &forlockv1.ListCertificatesRequest{})
	require.NoError(t, err)
	require.Empty(t, certs.GetCertificates(), "no task installed or reported a certificate")
}
