package api

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"time"
	"unicode"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/forlock/fleet/controlplane/internal/registry"
	"github.com/forlock/fleet/controlplane/internal/store"
	"github.com/forlock/fleet/controlplane/internal/tokens"
	"github.com/forlock/fleet/internal/labels"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// Join token limits.
const (
	DefaultTokenTTL = time.Hour
	MaxTokenTTL     = 30 * 24 * time.Hour
	MaxTokenUses    = 10000
	maxDescription  = 256
)

// NodeAPI implements forlockv1.NodeService.
type NodeAPI struct {
	forlockv1.UnsafeNodeServiceServer

	Store    NodeStore
	Registry *registry.Registry
	Log      *slog.Logger
}

// ListNodes implements NodeService.ListNodes.
func (a *NodeAPI) ListNodes(ctx context.Context, req *forlockv1.ListNodesRequest) (*forlockv1.ListNodesResponse, error) {
	sel, err := labels.ParseSelector(req.GetLabelSelector())
	if err != nil {
		return nil, invalid("%v", err)
	}
	for _, s := range req.GetStates() {
		if _, ok := forlockv1.NodeState_name[int32(s)]; !ok || s == forlockv1.NodeState_NODE_STATE_UNSPECIFIED {
			return nil, invalid("unknown node state %d: use ENROLLED, ONLINE, UNREACHABLE or OFFLINE", s)
		}
	}
	nodes := a.Registry.List(sel, req.GetStates())
	if scopeOf(ctx).String() != "" {
		nodes = slices.DeleteFunc(nodes, func(n *forlockv1.Node) bool { return !seesLabels(ctx, n.GetLabels()) })
	}
	return &forlockv1.ListNodesResponse{Nodes: nodes}, nil
}

// get returns the node named by ref (a name or an ID).
func (a *NodeAPI) get(ctx context.Context, ref string) (*forlockv1.Node, error) {
	if ref == "" {
		return nil, invalid("node is required: give a node name or ID")
	}
	t, err := a.Registry.Find(ref)
	if err == nil && !sees(ctx, a.Registry, t.ID) {
		err = store.NodeNotFound(ref) // outside the caller's scope is the same as absent
	}
	if err != nil {
		return nil, toStatus(ctx, a.Log, err)
	}
	n, ok := a.Registry.Get(t.ID)
	if !ok { // removed since Find
		return nil, toStatus(ctx, a.Log, store.NodeNotFound(ref))
	}
	return n, nil
}

// GetNode implements NodeService.GetNode.
func (a *NodeAPI) GetNode(ctx context.Context, req *forlockv1.GetNodeRequest) (*forlockv1.GetNodeResponse, error) {
	n, err := a.get(ctx, req.GetNode())
	if err != nil {
		return nil, err
	}
	n, err = withFacts(a.Store, n)
	if err != nil {
		return nil, toStatus(ctx, a.Log, err)
	}
	return &forlockv1.GetNodeResponse{Node: n}, nil
}

// RemoveNode implements NodeService.RemoveNode.
func (a *NodeAPI) RemoveNode(ctx context.Context, req *forlockv1.RemoveNodeRequest) (*forlockv1.RemoveNodeResponse, error) {
	before, err := a.get(ctx, req.GetNode())
	if err != nil {
		return nil, err
	}
	id := before.GetId()
	recs, done := change(ctx, "node/"+before.GetName())
	if _, err := a.Store.DeleteNode(id, recs...); err != nil {
		return nil, toStatus(ctx, a.Log, err)
	}
	done()
	a.Registry.Removed(id)
	a.Log.InfoContext(ctx, "node removed", "node", before.GetName(), "node_id", id)
	return &forlockv1.RemoveNodeResponse{Node: before}, nil
}

// CreateJoinToken implements NodeService.CreateJoinToken.
func (a *NodeAPI) CreateJoinToken(ctx context.Context, req *forlockv1.CreateJoinTokenRequest) (*forlockv1.CreateJoinTokenResponse, error) {
	if err := unscoped(ctx, "managing join tokens"); err != nil {
		return nil, err
	}
	ttl := DefaultTokenTTL
	if req.GetTtl() != nil {
		if err := req.GetTtl().CheckValid(); err != nil {
			return nil, invalid("ttl: %v", err)
		}
		ttl = req.GetTtl().AsDuration()
	}
	if ttl <= 0 || ttl > MaxTokenTTL {
		return nil, invalid("ttl %s out of range: use more than 0 and at most %s", ttl, MaxTokenTTL)
	}
	uses := req.GetMaxUses()
	if uses == 0 {
		uses = 1
	}
	if uses > MaxTokenUses {
		return nil, invalid("max_uses %d out of range: at most %d", uses, MaxTokenUses)
	}
	if err := labels.Validate(req.GetLabels()); err != nil {
		return nil, invalid("%v", err)
	}
	if err := validDescription(req.GetDescription()); err != nil {
		return nil, err
	}
	forName, forID, err := a.forNode(ctx, req)
	if err != nil {
		return nil, err
	}
	tok, err := tokens.NewJoin()
	if err != nil {
		return nil, toStatus(ctx, a.Log, err)
	}
	now := time.Now()
	rec := store.JoinToken{
		ID: tok.ID, Hash: tok.Hash, Description: req.GetDescription(), Labels: req.GetLabels(),
		CreatedAt: now, ExpiresAt: now.Add(ttl), MaxUses: uses, ForNodeName: forName, ForNodeID: forID,
	}
	recs, done := change(ctx, "join-token/"+tok.ID)
	if err := a.Store.CreateToken(rec, recs...); err != nil {
		return nil, toStatus(ctx, a.Log, err)
	}
	done()
	a.Log.InfoContext(ctx, "join token created", "token_id", tok.ID, "expires_at", rec.ExpiresAt, "max_uses", uses,
		"for_node", forName, "for_node_id", forID)
	return &forlockv1.CreateJoinTokenResponse{Secret: tok.Secret, Token: tokenView(rec)}, nil
}

// forNode checks a --for-node request: the node must exist, and the token
// has one use and no labels (the replacement keeps the node's labels).
func (a *NodeAPI) forNode(ctx context.Context, req *forlockv1.CreateJoinTokenRequest) (name, id string, err error) {
	ref := req.GetForNode()
	if ref == "" {
		return "", "", nil
	}
	if req.GetMaxUses() > 1 {
		return "", "", invalid("a --for-node token has exactly one use: leave max_uses at 0 or 1")
	}
	if len(req.GetLabels()) > 0 {
		return "", "", invalid("a --for-node token takes no labels: the replacement keeps node %s's labels", ref)
	}
	t, err := a.Registry.Find(ref)
	if err != nil {
		return "", "", toStatus(ctx, a.Log, fmt.Errorf("%w; --for-node replaces the host of a registered node: for a new node leave it out", err))
	}
	return t.Name, t.ID, nil
}

func validDescription(d string) error {
	if len(d) > maxDescription {
		return invalid("description longer than %d bytes", maxDescription)
	}
	for _, r := range d {
		if !unicode.IsPrint(r) {
			return invalid("description: only printable characters are allowed")
		}
	}
	return nil
}

// ListJoinTokens implements NodeService.ListJoinTokens.
func (a *NodeAPI) ListJoinTokens(ctx context.Context, req *forlockv1.ListJoinTokensRequest) (*forlockv1.ListJoinTokensResponse, error) {
	if err := unscoped(ctx, "managing join tokens"); err != nil {
		return nil, err
	}
	all, err := a.Store.ListTokens()
	if err != nil {
		return nil, toStatus(ctx, a.Log, err)
	}
	now := time.Now()
	resp := &forlockv1.ListJoinTokensResponse{}
	for _, t := range all {
		if req.GetIncludeInactive() || t.Usable(now) == nil {
			resp.Tokens = append(resp.Tokens, tokenView(t))
		}
	}
	return resp, nil
}

// RevokeJoinToken implements NodeService.RevokeJoinToken.
func (a *NodeAPI) RevokeJoinToken(ctx context.Context, req *forlockv1.RevokeJoinTokenRequest) (*forlockv1.RevokeJoinTokenResponse, error) {
	if err := unscoped(ctx, "managing join tokens"); err != nil {
		return nil, err
	}
	id := req.GetId()
	if !validTokenID(id) {
		return nil, invalid("token id %q: expected 12 hex digits as shown by 'forlockctl tokens list'", id)
	}
	recs, done := change(ctx, "join-token/"+id)
	t, err := a.Store.RevokeToken(id, time.Now(), recs...)
	if err != nil {
		return nil, toStatus(ctx, a.Log, fmt.Errorf("join token %s: %w", id, err))
	}
	done()
	a.Log.InfoContext(ctx, "join token revoked", "token_id", id)
	return &forlockv1.RevokeJoinTokenResponse{Token: tokenView(t)}, nil
}

func validTokenID(id string) bool {
	if len(id) != 12 {
		return false
	}
	for _, c := range id {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func tokenView(t store.JoinToken) *forlockv1.JoinToken {
	v := &forlockv1.JoinToken{
		Id: t.ID, Description: t.Description, Labels: t.Labels,
		CreatedAt: timestamppb.New(t.CreatedAt), ExpiresAt: timestamppb.New(t.ExpiresAt),
		MaxUses: t.MaxUses, Uses: t.Uses, ForNode: t.ForNodeName,
	}
	if !t.RevokedAt.IsZero() {
		v.RevokedAt = timestamppb.New(t.RevokedAt)
	}
	return v
}
