package api

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// as is a context calling with secret.
func (s *testServer) as(secret string) context.Context {
	return metadata.AppendToOutgoingContext(s.t.Context(), "authorization", "Bearer "+secret)
}

// TestIdentitySecretLifecycle: a rotated secret is refused at its next
// call and the new one works; a revoked identity is refused; a scoped admin
// may not act on the whole fleet (join tokens, identities, the audit log).
func TestIdentitySecretLifecycle(t *testing.T) {
	s := newTestServer(t, serverOptions{})
	acc := forlockv1.NewAccessServiceClient(s.conn)
	created, err := acc.CreateIdentity(s.ctx(), &forlockv1.CreateIdentityRequest{Name: "ci-bot", Role: "viewer"})
	require.NoError(t, err)
	old := created.GetSecret()
	_, err = s.Nodes.ListNodes(s.as(old), &forlockv1.ListNodesRequest{})
	require.NoError(t, err)

	rotated, err := acc.RotateIdentity(s.ctx(), &forlockv1.RotateIdentityRequest{Name: "ci-bot"})
	require.NoError(t, err)
	require.NotEqual(t, old, rotated.GetSecret())
	_, err = s.Nodes.ListNodes(s.as(old), &forlockv1.ListNodesRequest{})
	require.Equal(t, codes.Unauthenticated, status.Code(err), "%v", err)
	require.ErrorContains(t, err, "credential refused: unknown, revoked or rotated")
	_, err = s.Nodes.ListNodes(s.as(rotated.GetSecret()), &forlockv1.ListNodesRequest{})
	require.NoError(t, err)

	_, err = acc.RevokeIdentity(s.ctx(), &forlockv1.RevokeIdentityRequest{Name: "ci-bot"})
	require.NoError(t, err)
	_, err = s.Nodes.ListNodes(s.as(rotated.GetSecret()), &forlockv1.ListNodesRequest{})
	require.Equal(t, codes.Unauthenticated, status.Code(err), "%v", err)

	scoped, err := acc.CreateIdentity(s.ctx(), &forlockv1.CreateIdentityRequest{Name: "stg-admin", Role: "admin", Scope: "env=staging"})
	require.NoError(t, err)
	ctx := s.as(scoped.GetSecret())
	_, err = s.Nodes.CreateJoinToken(ctx, &forlockv1.CreateJoinTokenRequest{})
	require.Equal(t, codes.PermissionDenied, status.Code(err), "%v", err)
	require.ErrorContains(t, err, `managing join tokens acts on the whole fleet: identity stg-admin is scoped to "env=staging"`)
	_, err = acc.CreateIdentity(ctx, &forlockv1.CreateIdentityRequest{Name: "x", Role: "admin"})
	require.Equal(t, codes.PermissionDenied, status.Code(err), "%v", err)
	_, err = forlockv1.NewAuditServiceClient(s.conn).VerifyAudit(ctx, &forlockv1.VerifyAuditRequest{})
	require.Equal(t, codes.PermissionDenied, status.Code(err), "%v", err)
	// Its twin: an admin identity without a scope may.
	boss, err := acc.CreateIdentity(s.ctx(), &forlockv1.CreateIdentityRequest{Name: "boss", Role: "admin"})
	require.NoError(t, err)
	_, err = s.Nodes.CreateJoinToken(s.as(boss.GetSecret()), &forlockv1.CreateJoinTokenRequest{})
	require.NoError(t, err)
	_, err = forlockv1.NewAuditServiceClient(s.conn).VerifyAudit(s.as(boss.GetSecret()), &forlockv1.VerifyAuditRequest{})
	require.NoError(t, err)
}
