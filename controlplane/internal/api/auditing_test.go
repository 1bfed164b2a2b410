package api

import (
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/metadata"

	"github.com/forlock/fleet/controlplane/internal/audit"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// records returns the audit records of method, oldest first.
func (s *testServer) records(method string) []audit.Entry {
	s.t.Helper()
	var out []audit.Entry
	require.NoError(s.t, s.st.ScanAudit(0, func(e audit.Entry) bool {
		if e.Method == method {
			out = append(out, e)
		}
		return true
	}))
	return out
}

// TestAuditNamesActorAndTarget: the record of a mutating call names who
// made it and what it acted on, whether the handler appends it with its
// change (a join token) or the auditor after the call (a cancel, a submit).
func TestAuditNamesActorAndTarget(t *testing.T) {
	s := newTestServer(t, serverOptions{})
	s.enroll("web-1", nil)
	ctx := metadata.AppendToOutgoingContext(s.ctx(), ReasonHeader, "CHG-9")

	sub, err := s.Jobs.SubmitJob(ctx, &forlockv1.SubmitJobRequest{
		Spec:   &forlockv1.JobSpec{Kind: &forlockv1.JobSpec_HealthCheck{HealthCheck: &forlockv1.HealthCheckSpec{}}},
		Target: &forlockv1.Target{Nodes: []string{"web-1"}},
	})
	require.NoError(t, err)
	require.Equal(t, "admin", sub.GetJob().GetCreatedBy())
	require.Equal(t, "CHG-9", sub.GetJob().GetReason())
	_, err = s.Jobs.CancelJob(ctx, &forlockv1.CancelJobRequest{Id: sub.GetJob().GetId(), Reason: "not needed"})
	require.NoError(t, err)

	for method, target := range map[string]string{
		"/forlock.v1.JobService/CancelJob":        "job/" + sub.GetJob().GetId(),
		"/forlock.v1.NodeService/CreateJoinToken": "join-token/",
		"/forlock.v1.JobService/SubmitJob":        "",
	} {
		recs := s.records(method)
		require.NotEmpty(t, recs, method)
		r := recs[len(recs)-1]
		require.Equal(t, "admin", r.Actor, method)
		require.Equal(t, "admin", r.Role, method)
		require.Equal(t, audit.ResultOK, r.Result, method)
		require.Contains(t, r.Target, target, method)
	}
	require.Equal(t, "CHG-9", s.records("/forlock.v1.JobService/CancelJob")[0].Reason)
}
