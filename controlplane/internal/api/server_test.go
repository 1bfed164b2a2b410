package api

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/forlock/fleet/controlplane/internal/store"
	"github.com/forlock/fleet/controlplane/internal/tokens"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// TestAdminToken: every operator call needs the admin token as a bearer
// credential; each way of getting it wrong is refused with Unauthenticated
// and a message that says what to send, and logged without the secret.
// Health and Enroll stay open; agent calls need a client certificate.
func TestAdminToken(t *testing.T) {
	// Many refusals from one address: keep them under the block.
	s := newTestServer(t, serverOptions{failures: 1000})
	other, err := tokens.NewAdmin()
	require.NoError(t, err)
	join, err := tokens.NewJoin()
	require.NoError(t, err)
	with := func(vals ...string) context.Context {
		md := metadata.MD{}
		for _, v := range vals {
			md.Append("authorization", v)
		}
		return metadata.NewOutgoingContext(t.Context(), md)
	}
	for name, tc := range map[string]struct {
		ctx  context.Context
		code codes.Code
		msg  string
	}{
		"none":                 {t.Context(), codes.Unauthenticated, `missing admin token or identity secret: send "authorization: Bearer <token>"`},
		"not bearer":           {with("Basic " + s.admin.Secret), codes.Unauthenticated, `authorization must be "Bearer <token>"`},
		"lower-case bearer":    {with("bearer " + s.admin.Secret), codes.Unauthenticated, `authorization must be "Bearer <token>"`},
		"another admin token":  {with("Bearer " + other.Secret), codes.Unauthenticated, "admin token refused"},
		"a join token":         {with("Bearer " + join.Secret), codes.Unauthenticated, "admin token refused"},
		"malformed":            {with("Bearer fat_short"), codes.Unauthenticated, "admin token refused"},
		"right token, twice":   {with("Bearer "+s.admin.Secret, "Bearer "+s.admin.Secret), codes.Unauthenticated, "missing admin token"},
		"right token, trailer": {with("Bearer " + s.admin.Secret + " "), codes.Unauthenticated, "admin token refused"},
		"right token":          {with("Bearer " + s.admin.Secret), codes.OK, ""},
	} {
		t.Run(name, func(t *testing.T) {
			// One call of each admin service: the policy covers them all.
			calls := map[string]func() error{
				"nodes": func() error { _, err := s.Nodes.ListNodes(tc.ctx, &forlockv1.ListNodesRequest{}); return err },
				"jobs":  func() error { _, err := s.Jobs.ListJobs(tc.ctx, &forlockv1.ListJobsRequest{}); return err },
				"backups": func() error {
					_, err := s.Backups.ListRestorePoints(tc.ctx, &forlockv1.ListRestorePointsRequest{})
					return err
				},
				"certs": func() error {
					_, err := s.Certs.ListCertificates(tc.ctx, &forlockv1.ListCertificatesRequest{})
					return err
				},
				"status": func() error { _, err := s.Status.GetStatus(tc.ctx, &forlockv1.GetStatusRequest{}); return err },
				"logs": func() error {
					st, err := s.Logs.StreamLogs(tc.ctx, &forlockv1.StreamLogsRequest{Node: "nope"})
					require.NoError(t, err)
					_, err = st.Recv()
					if tc.code == codes.OK { // authenticated: the handler answers
						requireStatus(t, err, codes.NotFound, `node "nope" not found`, "NODE_NOT_FOUND")
						return nil
					}
					return err
				},
			}
			for svc, call := range calls {
				err := call()
				if tc.code == codes.OK {
					require.NoError(t, err, svc)
					continue
				}
				requireStatus(t, err, tc.code, tc.msg, "")
			}
		})
	}
	log := s.logs.String()
	require.Contains(t, log, "authentication failed")
	require.Contains(t, log, "admin token refused")
	for _, secret := range []string{s.admin.Secret, other.Secret, join.Secret} {
		require.NotContains(t, log, secret)
	}

	// Open: health, and Enroll (its join token is checked by the handler).
	_, err = s.Health.Check(t.Context(), &healthpb.HealthCheckRequest{})
	require.NoError(t, err)
	_, err = s.Agents.Enroll(t.Context(), &forlockv1.EnrollRequest{JoinToken: "nope"})
	requireStatus(t, err, codes.InvalidArgument, "join token is malformed", "")
	// Agent calls need a fleet client certificate; the admin token is no
	// substitute.
	_, err = s.Agents.RenewCertificate(s.ctx(), &forlockv1.RenewCertificateRequest{})
	requireStatus(t, err, codes.Unauthenticated, "agent calls need a client certificate issued by this fleet's CA", "")
}

// TestFailedAuthBlocks: wrong credentials from one address are counted, the
// one that reaches the limit blocks the address with ResourceExhausted, and
// a valid token still works: it is checked before the block.
func TestFailedAuthBlocks(t *testing.T) {
	s := newTestServer(t, serverOptions{failures: 3})
	wrong := metadata.AppendToOutgoingContext(t.Context(), "authorization", "Bearer fat_wrong")
	for range 3 {
		_, err := s.Nodes.ListNodes(wrong, &forlockv1.ListNodesRequest{})
		requireStatus(t, err, codes.Unauthenticated, "admin token refused", "")
	}
	_, err := s.Nodes.ListNodes(wrong, &forlockv1.ListNodesRequest{})
	requireStatus(t, err, codes.ResourceExhausted, "too many failed authentication attempts from bufconn; retry after", "")
	// An unknown join token is a wrong credential too, and is refused the
	// same way while the address is blocked.
	join, err := tokens.NewJoin()
	require.NoError(t, err)
	_, err = s.Agents.Enroll(t.Context(), &forlockv1.EnrollRequest{JoinToken: join.Secret, Name: "web-1"})
	requireStatus(t, err, codes.ResourceExhausted, "too many failed authentication attempts", "")

	_, err = s.Nodes.ListNodes(s.ctx(), &forlockv1.ListNodesRequest{})
	require.NoError(t, err)
	require.Contains(t, s.logs.String(), "client blocked: too many failed authentication attempts")
}

// panicDisk makes GetStatus panic, as a handler bug would.
type panicDisk struct{}

func (panicDisk) Disk() store.DiskStatus { panic("disk status exploded") }

// TestPanicBecomesInternal: a handler that panics answers Internal without
// its details, the stack is logged, and the server goes on serving on the
// same connection. Authentication still runs first: an unauthenticated call
// never reaches the panicking handler.
func TestPanicBecomesInternal(t *testing.T) {
	s := newTestServer(t, serverOptions{services: func(svc *Services) {
		svc.ControlPlane = &ControlPlaneAPI{Disk: panicDisk{}}
	}})
	_, err := s.Status.GetStatus(t.Context(), &forlockv1.GetStatusRequest{})
	requireStatus(t, err, codes.Unauthenticated, "missing admin token", "")
	require.NotContains(t, s.logs.String(), "handler panic")

	for range 2 {
		_, err = s.Status.GetStatus(s.ctx(), &forlockv1.GetStatusRequest{})
		requireStatus(t, err, codes.Internal, "internal error; see the control plane log", "")
		require.NotContains(t, err.Error(), "exploded")
	}
	log := s.logs.String()
	require.Contains(t, log, `"msg":"handler panic"`)
	require.Contains(t, log, "disk status exploded")
	require.Contains(t, log, "panicDisk.Disk") // the stack
	// The request log has the call too, with the code its caller got.
	require.Regexp(t, `"msg":"rpc","method":"/forlock.v1.ControlPlaneService/GetStatus","client":"bufconn","code":"Internal"`, log)

	// Still serving.
	s.enroll("web-1", nil)
	nodes, err := s.Nodes.ListNodes(s.ctx(), &forlockv1.ListNodesRequest{})
	require.NoError(t, err)
	require.Len(t, nodes.GetNodes(), 1)
}

// TestRequestValidation: each malformed request is InvalidArgument with a
// message that says what is wrong, and changes nothing.
func TestRequestValidation(t *testing.T) {
	s := newTestServer(t, serverOptions{})
	s.enroll("web-1", nil)
	ctx := s.ctx()
	long := strings.Repeat("a", 65)
	for name, tc := range map[string]struct {
		call   func() error
		msg    string
		reason string
	}{
		"selector": {func() error {
			_, err := s.Nodes.ListNodes(ctx, &forlockv1.ListNodesRequest{LabelSelector: "Role=web"})
			return err
		}, `selector "Role=web": term "Role=web": invalid label: key "Role"`, ""},
		"node state": {func() error {
			_, err := s.Nodes.ListNodes(ctx, &forlockv1.ListNodesRequest{States: []forlockv1.NodeState{42}})
			return err
		}, "unknown node state 42", ""},
		"unspecified node state": {func() error {
			_, err := s.Nodes.ListNodes(ctx, &forlockv1.ListNodesRequest{States: []forlockv1.NodeState{forlockv1.NodeState_NODE_STATE_UNSPECIFIED}})
			return err
		}, "unknown node state 0", ""},
		"no node": {func() error {
			_, err := s.Nodes.GetNode(ctx, &forlockv1.GetNodeRequest{})
			return err
		}, "node is required", ""},
		"token ttl zero": {func() error {
			_, err := s.Nodes.CreateJoinToken(ctx, &forlockv1.CreateJoinTokenRequest{Ttl: durationpb.New(0)})
			return err
		}, "ttl 0s out of range", ""},
		"token ttl too long": {func() error {
			_, err := s.Nodes.CreateJoinToken(ctx, &forlockv1.CreateJoinTokenRequest{Ttl: durationpb.New(31 * 24 * time.Hour)})
			return err
		}, "ttl 744h0m0s out of range", ""},
		"token uses": {func() error {
			_, err := s.Nodes.CreateJoinToken(ctx, &forlockv1.CreateJoinTokenRequest{MaxUses: MaxTokenUses + 1})
			return err
		}, "max_uses 10001 out of range", ""},
		"token labels": {func() error {
			_, err := s.Nodes.CreateJoinToken(ctx, &forlockv1.CreateJoinTokenRequest{Labels: map[string]string{"Role": "x"}})
			return err
		}, `key "Role": use lower-case letters`, ""},
		"token description": {func() error {
			_, err := s.Nodes.CreateJoinToken(ctx, &forlockv1.CreateJoinTokenRequest{Description: "a\x00b"})
			return err
		}, "only printable characters", ""},
		"for-node uses": {func() error {
			_, err := s.Nodes.CreateJoinToken(ctx, &forlockv1.CreateJoinTokenRequest{ForNode: "web-1", MaxUses: 2})
			return err
		}, "a --for-node token has exactly one use", ""},
		"for-node labels": {func() error {
			_, err := s.Nodes.CreateJoinToken(ctx, &forlockv1.CreateJoinTokenRequest{ForNode: "web-1", Labels: map[string]string{"a": "b"}})
			return err
		}, "a --for-node token takes no labels", ""},
		"token id": {func() error {
			_, err := s.Nodes.RevokeJoinToken(ctx, &forlockv1.RevokeJoinTokenRequest{Id: "ABCDEF012345"})
			return err
		}, "expected 12 hex digits", ""},
		"job id": {func() error {
			_, err := s.Jobs.GetJob(ctx, &forlockv1.GetJobRequest{})
			return err
		}, "id is required", ""},
		"cancel id": {func() error {
			_, err := s.Jobs.CancelJob(ctx, &forlockv1.CancelJobRequest{})
			return err
		}, "id is required", ""},
		"page size": {func() error {
			_, err := s.Jobs.ListJobs(ctx, &forlockv1.ListJobsRequest{PageSize: maxPageSize + 1})
			return err
		}, "page_size 1001: at most 1000", ""},
		"page token": {func() error {
			_, err := s.Jobs.ListJobs(ctx, &forlockv1.ListJobsRequest{PageToken: long})
			return err
		}, "page_token is not one this server returned", ""},
		"job kind": {func() error {
			_, err := s.Jobs.ListJobs(ctx, &forlockv1.ListJobsRequest{Kind: "bakup"})
			return err
		}, `unknown job kind "bakup"`, ""},
		"job state": {func() error {
			_, err := s.Jobs.ListJobs(ctx, &forlockv1.ListJobsRequest{States: []forlockv1.JobState{42}})
			return err
		}, "unknown job state 42", ""},
		"restore page size": {func() error {
			_, err := s.Backups.ListRestorePoints(ctx, &forlockv1.ListRestorePointsRequest{PageSize: maxPageSize + 1})
			return err
		}, "page_size 1001: at most 1000", ""},
		"restore page token": {func() error {
			_, err := s.Backups.ListRestorePoints(ctx, &forlockv1.ListRestorePointsRequest{PageToken: long})
			return err
		}, "page_token is not one this server returned", ""},
		"cert selector": {func() error {
			_, err := s.Certs.ListCertificates(ctx, &forlockv1.ListCertificatesRequest{LabelSelector: "a=b=c"})
			return err
		}, "invalid label", ""},
		"job without spec": {func() error {
			_, err := s.Jobs.SubmitJob(ctx, &forlockv1.SubmitJobRequest{Target: &forlockv1.Target{Nodes: []string{"web-1"}}})
			return err
		}, "invalid job", "INVALID_JOB"},
		"log service": {func() error {
			st, err := s.Logs.StreamLogs(ctx, &forlockv1.StreamLogsRequest{Node: "web-1", Query: &forlockv1.LogQuery{Services: []string{"mysql"}}})
			require.NoError(t, err)
			_, err = st.Recv()
			return err
		}, `unknown service "mysql"`, ""},
		"enroll name": {func() error {
			tok, err := s.Nodes.CreateJoinToken(ctx, &forlockv1.CreateJoinTokenRequest{})
			require.NoError(t, err)
			_, err = s.Agents.Enroll(t.Context(), &forlockv1.EnrollRequest{JoinToken: tok.GetSecret(), Name: "Web_1!"})
			return err
		}, `node name "Web_1!": use lower-case letters`, ""},
		"enroll csr": {func() error {
			tok, err := s.Nodes.CreateJoinToken(ctx, &forlockv1.CreateJoinTokenRequest{})
			require.NoError(t, err)
			_, err = s.Agents.Enroll(t.Context(), &forlockv1.EnrollRequest{JoinToken: tok.GetSecret(), Name: "web-2", Csr: []byte("junk")})
			return err
		}, "certificate signing request refused", ""},
	} {
		t.Run(name, func(t *testing.T) {
			requireStatus(t, tc.call(), codes.InvalidArgument, tc.msg, tc.reason)
		})
	}
	// Nothing changed: one node, no job; the tokens made above are there
	// but unused.
	nodes, err := s.Nodes.ListNodes(ctx, &forlockv1.ListNodesRequest{})
	require.NoError(t, err)
	require.Len(t, nodes.GetNodes(), 1)
	jobs, err := s.Jobs.ListJobs(ctx, &forlockv1.ListJobsRequest{})
	require.NoError(t, err)
	require.Empty(t, jobs.GetJobs())
}

// TestNotFound: a node that is not registered is NotFound with reason
// NODE_NOT_FOUND and the same message from every service that takes a
// node; other missing things carry their own reasons. The positive twin: the
// same calls find a registered node, by name and by ID, until it is removed.
func TestNotFound(t *testing.T) {
	s := newTestServer(t, serverOptions{})
	ctx := s.ctx()
	byNode := func(node string) map[string]func() error {
		return map[string]func() error{
			"get": func() error { _, err := s.Nodes.GetNode(ctx, &forlockv1.GetNodeRequest{Node: node}); return err },
			"jobs": func() error {
				_, err := s.Jobs.ListJobs(ctx, &forlockv1.ListJobsRequest{Node: node})
				return err
			},
			"restore points": func() error {
				_, err := s.Backups.ListRestorePoints(ctx, &forlockv1.ListRestorePointsRequest{Node: node})
				return err
			},
			"for-node token": func() error {
				_, err := s.Nodes.CreateJoinToken(ctx, &forlockv1.CreateJoinTokenRequest{ForNode: node})
				return err
			},
			"submit": func() error {
				_, err := s.Jobs.SubmitJob(ctx, &forlockv1.SubmitJobRequest{
					Spec:   &forlockv1.JobSpec{Kind: &forlockv1.JobSpec_HealthCheck{HealthCheck: &forlockv1.HealthCheckSpec{}}},
					Target: &forlockv1.Target{Nodes: []string{node}},
				})
				return err
			},
		}
	}
	for name, call := range byNode("web-1") {
		err := call()
		if name == "submit" { // the engine's own check, through the same table
			requireStatus(t, err, codes.InvalidArgument, `node "web-1"`, "INVALID_JOB")
			continue
		}
		requireStatus(t, err, codes.NotFound, `node "web-1" not found: see 'forlockctl nodes list'`, "NODE_NOT_FOUND")
	}
	_, err := s.Nodes.RemoveNode(ctx, &forlockv1.RemoveNodeRequest{Node: "web-1"})
	requireStatus(t, err, codes.NotFound, `node "web-1" not found`, "NODE_NOT_FOUND")
	logs, err := s.Logs.StreamLogs(ctx, &forlockv1.StreamLogsRequest{Node: "web-1"})
	require.NoError(t, err)
	_, err = logs.Recv()
	requireStatus(t, err, codes.NotFound, `node "web-1" not found`, "NODE_NOT_FOUND")

	_, err = s.Backups.GetArtifact(ctx, &forlockv1.GetArtifactRequest{Id: "nope-postgres"})
	requireStatus(t, err, codes.NotFound, `artifact "nope-postgres" not found: see 'forlockctl restore --list'`, "NOT_FOUND")
	_, err = s.Jobs.GetJob(ctx, &forlockv1.GetJobRequest{Id: "nope"})
	requireStatus(t, err, codes.NotFound, "job not found", "JOB_NOT_FOUND")
	_, err = s.Nodes.RevokeJoinToken(ctx, &forlockv1.RevokeJoinTokenRequest{Id: "0123456789ab"})
	requireStatus(t, err, codes.NotFound, "join token 0123456789ab: not found", "NOT_FOUND")

	// The twin: registered, the node is found by name and by ID.
	id := s.enroll("web-1", map[string]string{"role": "web"})
	for _, ref := range []string{"web-1", id} {
		for name, call := range byNode(ref) {
			require.NoError(t, call(), "%s by %s", name, ref)
		}
		got, err := s.Nodes.GetNode(ctx, &forlockv1.GetNodeRequest{Node: ref})
		require.NoError(t, err)
		require.Equal(t, id, got.GetNode().GetId())
		require.Equal(t, map[string]string{"role": "web"}, got.GetNode().GetLabels())
	}
	// Not connected: its logs cannot be read, which is not NotFound.
	logs, err = s.Logs.StreamLogs(ctx, &forlockv1.StreamLogsRequest{Node: "web-1"})
	require.NoError(t, err)
	_, err = logs.Recv()
	requireStatus(t, err, codes.Unavailable, "node web-1 is not connected", "")

	removed, err := s.Nodes.RemoveNode(ctx, &forlockv1.RemoveNodeRequest{Node: id})
	require.NoError(t, err)
	require.Equal(t, "web-1", removed.GetNode().GetName())
	_, err = s.Nodes.GetNode(ctx, &forlockv1.GetNodeRequest{Node: "web-1"})
	requireStatus(t, err, codes.NotFound, `node "web-1" not found`, "NODE_NOT_FOUND")
	_, err = s.Nodes.GetNode(ctx, &forlockv1.GetNodeRequest{Node: id})
	requireStatus(t, err, codes.NotFound, `node "`+id+`" not found`, "NODE_NOT_FOUND")
}
