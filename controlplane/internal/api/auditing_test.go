package api

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"

	"github.com/forlock/fleet/controlplane/internal/audit"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

func (s *testServer) audit(method string) []*forlockv1.AuditRecord {
	s.t.Helper()
	resp, err := forlockv1.NewAuditServiceClient(s.conn).ListAuditRecords(s.ctx(), &forlockv1.ListAuditRecordsRequest{Method: method, PageSize: 1000})
	require.NoError(s.t, err)
	return resp.GetRecords()
}

// TestRequireReason: with reasons required, a destructive call without one
// is refused and changes nothing; with one it goes through and the reason is
// in its record. Other calls need none.
func TestRequireReason(t *testing.T) {
	s := newTestServer(t, serverOptions{requireReason: true})
	s.enroll("web1", nil)

	_, err := s.Nodes.RemoveNode(s.ctx(), &forlockv1.RemoveNodeRequest{Node: "web1"})
	requireStatus(t, err, codes.FailedPrecondition, "a reason is required for /forlock.v1.NodeService/RemoveNode: give one with --reason", "")
	s.node("web1") // still there
	require.Empty(t, s.audit("RemoveNode"), "a refused call before the handler changed nothing; its refusal is in the request log")

	ctx := metadata.AppendToOutgoingContext(s.ctx(), ReasonHeader, "CHG-1234 host retired")
	_, err = s.Nodes.RemoveNode(ctx, &forlockv1.RemoveNodeRequest{Node: "web1"})
	require.NoError(t, err)
	recs := s.audit("RemoveNode")
	require.Len(t, recs, 1)
	require.Equal(t, "CHG-1234 host retired", recs[0].GetReason())
	require.Equal(t, "node/web1", recs[0].GetTarget())
	require.Equal(t, "admin", recs[0].GetActor())
	require.Equal(t, "OK", recs[0].GetResult())

	_, err = s.Nodes.CreateJoinToken(s.ctx(), &forlockv1.CreateJoinTokenRequest{})
	require.NoError(t, err, "not destructive: no reason needed")

	bad := metadata.AppendToOutgoingContext(s.ctx(), ReasonHeader, strings.Repeat("x", MaxReason+1))
	_, err = s.Nodes.CreateJoinToken(bad, &forlockv1.CreateJoinTokenRequest{})
	requireStatus(t, err, codes.InvalidArgument, "reason: at most 256 printable characters", "")
}

// TestOneRecordPerChange: a change whose record is written in its own
// transaction is not recorded a second time by the interceptor; a failed
// call is recorded with its code; a read is not recorded.
func TestOneRecordPerChange(t *testing.T) {
	s := newTestServer(t, serverOptions{})
	// enroll creates a join token and enrolls with it: two audited calls.
	s.enroll("web1", nil)
	tokens := s.audit("CreateJoinToken")
	require.Len(t, tokens, 1)
	require.Regexp(t, `^join-token/[0-9a-f]{12}$`, tokens[0].GetTarget())
	enrolls := s.audit("Enroll")
	require.Len(t, enrolls, 1)
	require.Regexp(t, `^join-token/[0-9a-f]{12}$`, enrolls[0].GetActor())
	require.Equal(t, "node/web1", enrolls[0].GetTarget())
	require.Contains(t, enrolls[0].GetSummary(), `join_token=<redacted>`)
	require.Contains(t, enrolls[0].GetSummary(), `csr=<redacted>`)

	_, err := s.Nodes.RevokeJoinToken(s.ctx(), &forlockv1.RevokeJoinTokenRequest{Id: "000000000000"})
	require.Error(t, err)
	revokes := s.audit("RevokeJoinToken")
	require.Len(t, revokes, 1)
	require.Equal(t, "NotFound", revokes[0].GetResult())

	_, err = s.Nodes.ListNodes(s.ctx(), &forlockv1.ListNodesRequest{})
	require.NoError(t, err)
	require.Empty(t, s.audit("ListNodes"))

	v, err := forlockv1.NewAuditServiceClient(s.conn).VerifyAudit(s.ctx(), &forlockv1.VerifyAuditRequest{})
	require.NoError(t, err)
	require.True(t, v.GetOk(), v.GetProblem())
	require.Equal(t, uint64(3), v.GetRecords())
}

// TestSubmitRecordedWithTheJob: a submit's record is committed with the job
// (target job/<id>, the submitter as actor); a repeat with the same
// idempotency key is recorded by the interceptor against the same job; a
// cancel names its job and keeps its actor.
func TestSubmitRecordedWithTheJob(t *testing.T) {
	s := newTestServer(t, serverOptions{})
	s.enroll("web1", nil)
	req := &forlockv1.SubmitJobRequest{
		Spec:           &forlockv1.JobSpec{Kind: &forlockv1.JobSpec_HealthCheck{HealthCheck: &forlockv1.HealthCheckSpec{}}},
		Target:         &forlockv1.Target{Nodes: []string{"web1"}},
		IdempotencyKey: "nightly-1",
	}
	first, err := s.Jobs.SubmitJob(s.ctx(), req)
	require.NoError(t, err)
	require.True(t, first.GetCreated())
	again, err := s.Jobs.SubmitJob(s.ctx(), req)
	require.NoError(t, err)
	require.False(t, again.GetCreated())
	recs := s.audit("SubmitJob")
	require.Len(t, recs, 2)
	for _, r := range recs {
		require.Equal(t, "job/"+first.GetJob().GetId(), r.GetTarget())
		require.Equal(t, "admin", r.GetActor())
		require.Equal(t, "OK", r.GetResult())
	}
	require.Equal(t, "admin", first.GetJob().GetCreatedBy())

	_, err = s.Jobs.CancelJob(s.ctx(), &forlockv1.CancelJobRequest{Id: first.GetJob().GetId(), Reason: "wrong night"})
	require.NoError(t, err)
	cancels := s.audit("CancelJob")
	require.Len(t, cancels, 1)
	require.Equal(t, "admin", cancels[0].GetActor())
	require.Equal(t, "job/"+first.GetJob().GetId(), cancels[0].GetTarget())
}

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
		"/forlock.v1.JobService/SubmitJob":        "job/" + sub.GetJob().GetId(),
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
