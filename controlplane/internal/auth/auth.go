// Package auth decides who may call what on the control plane's gRPC server.
//
// Three kinds of caller exist, told apart by method:
//   - AgentService/Enroll: anyone who reaches the port; the join token in the
//     request is the credential, checked by the handler.
//   - The rest of AgentService: an agent, by its mTLS client certificate. The
//     TLS layer has verified the chain against the fleet CA; here the node
//     identity in the certificate must belong to a registered node at its
//     current epoch.
//   - NodeService, JobService, LogService, BackupService, CertService and
//     ControlPlaneService: an operator, by the admin token as a bearer
//     credential.
//
// Health and reflection are open. Any other method is refused: a new service
// must be added here before it can be called.
package auth

import (
	"context"

	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/forlock/fleet/controlplane/internal/tokens"
	"github.com/forlock/fleet/internal/pki"
)

// Authorizer checks that a certificate's node identity is current.
type Authorizer interface {
	Authorize(id pki.NodeID) error
}

// AdminHash returns the current admin token hash.
type AdminHash func() []byte

type policy int

const (
	open policy = iota
	node
	admin
	deny
)

func policyFor(fullMethod string) policy {
	switch {
	case fullMethod == "/forlock.v1.AgentService/Enroll":
		return open
	case strings.HasPrefix(fullMethod, "/forlock.v1.AgentService/"):
		return node
	case strings.HasPrefix(fullMethod, "/forlock.v1.NodeService/"),
		strings.HasPrefix(fullMethod, "/forlock.v1.JobService/"),
		strings.HasPrefix(fullMethod, "/forlock.v1.LogService/"),
		strings.HasPrefix(fullMethod, "/forlock.v1.BackupService/"),
		strings.HasPrefix(fullMethod, "/forlock.v1.CertService/"),
		strings.HasPrefix(fullMethod, "/forlock.v1.ControlPlaneService/"):
		return admin
	case strings.HasPrefix(fullMethod, "/grpc.health.v1.Health/"),
		strings.HasPrefix(fullMethod, "/grpc.reflection.v1.ServerReflection/"),
		strings.HasPrefix(fullMethod, "/grpc.reflection.v1alpha.ServerReflection/"):
		return open
	}
	return deny
}

type nodeKey struct{}

// NodeFromContext returns the authenticated node identity of an agent call.
func NodeFromContext(ctx context.Context) (pki.NodeID, bool) {
	id, ok := ctx.Value(nodeKey{}).(pki.NodeID)
	return id, ok
}

// Checker authenticates calls.
type Checker struct {
	Nodes Authorizer
	Admin AdminHash
}

func (c *Checker) check(ctx context.Context, fullMethod string) (context.Context, error) {
	switch policyFor(fullMethod) {
	case open:
		return ctx, nil
	case node:
		id, err := c.nodeIdentity(ctx)
		if err != nil {
			return nil, err
		}
		return context.WithValue(ctx, nodeKey{}, id), nil
	case admin:
		return ctx, c.adminToken(ctx)
	}
	return nil, status.Errorf(codes.PermissionDenied, "method %s is not allowed", fullMethod)
}

func (c *Checker) nodeIdentity(ctx context.Context) (pki.NodeID, error) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return pki.NodeID{}, status.Error(codes.Unauthenticated, "no peer information")
	}
	ti, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(ti.State.VerifiedChains) == 0 || len(ti.State.VerifiedChains[0]) == 0 {
		return pki.NodeID{}, status.Error(codes.Unauthenticated, "agent calls need a client certificate issued by this fleet's CA: enroll the agent with a join token")
	}
	id, err := pki.NodeIdentity(ti.State.VerifiedChains[0][0])
	if err != nil {
		return pki.NodeID{}, status.Error(codes.Unauthenticated, "client certificate carries no node identity")
	}
	if err := c.Nodes.Authorize(id); err != nil {
		return pki.NodeID{}, status.Errorf(codes.Unauthenticated, "node %s refused: %v; give the agent a fresh join token to enroll again", id.ID, err)
	}
	return id, nil
}

func (c *Checker) adminToken(ctx context.Context) error {
	md, _ := metadata.FromIncomingContext(ctx)
	vals := md.Get("authorization")
	if len(vals) != 1 {
		return status.Error(codes.Unauthenticated, "missing admin token: send \"authorization: Bearer <token>\" (forlockctl --token or FORLOCK_TOKEN)")
	}
	secret, ok := strings.CutPrefix(vals[0], "Bearer ")
	if !ok {
		return status.Error(codes.Unauthenticated, "authorization must be \"Bearer <token>\"")
	}
	tok, err := tokens.ParseAdmin(secret)
	if err != nil || !tokens.Equal(tok.Hash, c.Admin()) {
		return status.Error(codes.Unauthenticated, "admin token refused")
	}
	return nil
}

// Unary is the unary server interceptor.
func (c *Checker) Unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	ctx, err := c.check(ctx, info.FullMethod)
	if err != nil {
		return nil, err
	}
	return h(ctx, req)
}

// Stream is the stream server interceptor.
func (c *Checker) Stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	ctx, err := c.check(ss.Context(), info.FullMethod)
	if err != nil {
		return err
	}
	return h(srv, &wrapped{ServerStream: ss, ctx: ctx})
}

type wrapped struct {
	grpc.ServerStream
	ctx context.Context
}

func (w *wrapped) Context() context.Context { return w.ctx }
