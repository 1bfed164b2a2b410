package api

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"

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
