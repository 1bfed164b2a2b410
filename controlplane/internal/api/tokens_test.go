package api

import (
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"

	"github.com/forlock/fleet/controlplane/internal/tokens"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// TestJoinTokens: a token's life through the API, and each refusal of an
// enrollment with its reason.
func TestJoinTokens(t *testing.T) {
	s := newTestServer(t, serverOptions{})
	ctx := s.ctx()
	tok, err := s.Nodes.CreateJoinToken(ctx, &forlockv1.CreateJoinTokenRequest{Description: "rack 4", Labels: map[string]string{"rack": "4"}})
	require.NoError(t, err)
	require.Equal(t, uint32(1), tok.GetToken().GetMaxUses())
	parsed, err := tokens.ParseJoin(tok.GetSecret())
	require.NoError(t, err)
	require.Equal(t, parsed.ID, tok.GetToken().GetId())

	list, err := s.Nodes.ListJoinTokens(ctx, &forlockv1.ListJoinTokensRequest{})
	require.NoError(t, err)
	require.Len(t, list.GetTokens(), 1)
	require.Equal(t, "rack 4", list.GetTokens()[0].GetDescription())

	enroll := func(secret, name string) error {
		_, _, err := s.enrollWith(secret, name)
		return err
	}
	require.NoError(t, enroll(tok.GetSecret(), "web-1"))
	node, err := s.Nodes.GetNode(ctx, &forlockv1.GetNodeRequest{Node: "web-1"})
	require.NoError(t, err)
	require.Equal(t, map[string]string{"rack": "4"}, node.GetNode().GetLabels())
	require.Equal(t, forlockv1.NodeState_NODE_STATE_ENROLLED, node.GetNode().GetState())

	requireStatus(t, enroll(tok.GetSecret(), "web-2"), codes.PermissionDenied, "has no uses left", "JOIN_TOKEN_USED_UP")
	// Used up: listed only with include_inactive.
	list, err = s.Nodes.ListJoinTokens(ctx, &forlockv1.ListJoinTokensRequest{})
	require.NoError(t, err)
	require.Empty(t, list.GetTokens())
	list, err = s.Nodes.ListJoinTokens(ctx, &forlockv1.ListJoinTokensRequest{IncludeInactive: true})
	require.NoError(t, err)
	require.Len(t, list.GetTokens(), 1)
	require.Equal(t, uint32(1), list.GetTokens()[0].GetUses())

	tok2, err := s.Nodes.CreateJoinToken(ctx, &forlockv1.CreateJoinTokenRequest{MaxUses: 5})
	require.NoError(t, err)
	requireStatus(t, enroll(tok2.GetSecret(), "web-1"), codes.AlreadyExists, "node web-1 is already enrolled with another key", "NODE_NAME_TAKEN")
	revoked, err := s.Nodes.RevokeJoinToken(ctx, &forlockv1.RevokeJoinTokenRequest{Id: tok2.GetToken().GetId()})
	require.NoError(t, err)
	require.NotNil(t, revoked.GetToken().GetRevokedAt())
	requireStatus(t, enroll(tok2.GetSecret(), "web-3"), codes.PermissionDenied, "join token revoked", "JOIN_TOKEN_REVOKED")
	_, err = s.Nodes.RevokeJoinToken(ctx, &forlockv1.RevokeJoinTokenRequest{Id: tok2.GetToken().GetId()})
	requireStatus(t, err, codes.FailedPrecondition, "already revoked", "JOIN_TOKEN_ALREADY_REVOKED")

	unknown, err := tokens.NewJoin()
	require.NoError(t, err)
	requireStatus(t, enroll(unknown.Secret, "web-4"), codes.Unauthenticated, "is not known to this control plane", "JOIN_TOKEN_UNKNOWN")

	// A --for-node token names its node by name.
	forNode, err := s.Nodes.CreateJoinToken(ctx, &forlockv1.CreateJoinTokenRequest{ForNode: node.GetNode().GetId()})
	require.NoError(t, err)
	require.Equal(t, "web-1", forNode.GetToken().GetForNode())
	requireStatus(t, enroll(forNode.GetSecret(), "web-5"), codes.PermissionDenied, "it replaces the host of node web-1 only", "JOIN_TOKEN_FOR_ANOTHER_NODE")
}
