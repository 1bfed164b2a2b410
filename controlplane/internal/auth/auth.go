// Package auth decides who may call what on the control plane's gRPC server.
//
// Three kinds of caller exist, told apart by method:
//   - AgentService/Enroll: anyone who reaches the port; the join token in the
//     request is the credential, checked by the handler.
//   - The rest of AgentService: an agent, by its mTLS client certificate. The
//     TLS layer has verified the chain against the fleet CA; here the
//     certificate must still speak for its node (Authorizer: the node's
//     current epoch, and its newest certificate or the one before it within
//     a short grace).
//   - NodeService, JobService, LogService, BackupService, CertService and
//     ControlPlaneService: an operator, by the admin token as a bearer
//     credential.
//
// Health and reflection are open. Any other method is refused: a new service
// must be added here before it can be called.
//
// Every refused credential (admin token, client certificate, and the join
// tokens Enroll checks through Refuse) is logged with the client's address,
// the method and the reason, never the secret, and counted per address by a
// limit.Failures: an address over the limit gets ResourceExhausted for its
// wrong credentials without further work. A valid credential is checked
// first and never counted or throttled, and the connection it came on stops
// counting against the per-address connection cap (limit.Conns.Trust).
package auth

import (
	"context"
	"log/slog"
	"net"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/forlock/fleet/controlplane/internal/limit"
	"github.com/forlock/fleet/controlplane/internal/tokens"
	"github.com/forlock/fleet/internal/pki"
)

// Authorizer checks that a certificate (its node identity and serial, hex)
// may speak for its node now. Its error, shown to the caller, says what to do.
type Authorizer interface {
	Authorize(id pki.NodeID, serial string) error
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

// Trusted is told when a call on a connection carried a valid credential
// (limit.Conns).
type Trusted interface {
	Trust(remote net.Addr)
}

// Checker authenticates calls.
type Checker struct {
	Nodes Authorizer
	Admin AdminHash
	// NodeRefused, if set, is told of every agent call refused by Nodes,
	// with its method and the certificate's serial: the control plane logs a
	// superseded certificate as a possible theft, and quarantines its node
	// when it tried to renew.
	NodeRefused func(ctx context.Context, method string, id pki.NodeID, serial string, err error)
	// Failures counts refused credentials per client address.
	Failures *limit.Failures
	// Conns, if set, learns which connections carried a valid credential.
	Conns Trusted
	// Log receives one line per refused credential.
	Log *slog.Logger
}

func (c *Checker) check(ctx context.Context, fullMethod string) (context.Context, error) {
	switch policyFor(fullMethod) {
	case open:
		return ctx, nil
	case node:
		id, err := c.nodeIdentity(ctx, fullMethod)
		if err != nil {
			return nil, c.refuse(ctx, fullMethod, err)
		}
		return context.WithValue(ctx, nodeKey{}, id), nil
	case admin:
		if err := c.adminToken(ctx); err != nil {
			return nil, c.refuse(ctx, fullMethod, err)
		}
		c.Accept(ctx)
		return ctx, nil
	}
	return nil, status.Errorf(codes.PermissionDenied, "method %s is not allowed", fullMethod)
}

// Refuse handles a credential that a handler refused (Enroll's join token):
// it logs and counts the failure for the client's address and returns err,
// or ResourceExhausted while the address is blocked. err's message must hold
// no secret; it is logged as the reason.
func (c *Checker) Refuse(ctx context.Context, err error) error {
	method, _ := grpc.Method(ctx)
	return c.refuse(ctx, method, err)
}

// Accept records that a call carried a valid credential: its connection no
// longer counts against the per-address cap on unauthenticated connections.
func (c *Checker) Accept(ctx context.Context) {
	if p, ok := peer.FromContext(ctx); ok && c.Conns != nil {
		c.Conns.Trust(p.Addr)
	}
}

func (c *Checker) refuse(ctx context.Context, method string, err error) error {
	var addr net.Addr
	if p, ok := peer.FromContext(ctx); ok {
		addr = p.Addr
	}
	key := limit.Key(addr)
	if c.Failures != nil {
		if left, blocked := c.Failures.Blocked(key); blocked {
			// Not logged one by one: the block was, and the request log
			// has every call with its client and code.
			return tooMany(key, left)
		}
	}
	c.log().WarnContext(ctx, "authentication failed", "client", limit.Host(addr), "method", method, "reason", status.Convert(err).Message())
	if c.Failures != nil {
		if block, started := c.Failures.Fail(key); started {
			c.log().WarnContext(ctx, "client blocked: too many failed authentication attempts", "client", limit.Host(addr),
				"method", method, "reason", "failure limit reached", "address", key, "failures", c.Failures.Max(), "blocked_for", block.String())
		}
	}
	return err
}

func tooMany(client string, left time.Duration) error {
	left = (left + time.Second - 1).Truncate(time.Second)
	return status.Errorf(codes.ResourceExhausted, "too many failed authentication attempts from %s; retry after %s", client, left)
}

func (c *Checker) log() *slog.Logger {
	if c.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return c.Log
}

func (c *Checker) nodeIdentity(ctx context.Context, fullMethod string) (pki.NodeID, error) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return pki.NodeID{}, status.Error(codes.Unauthenticated, "no peer information")
	}
	ti, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(ti.State.VerifiedChains) == 0 || len(ti.State.VerifiedChains[0]) == 0 {
		return pki.NodeID{}, status.Error(codes.Unauthenticated, "agent calls need a client certificate issued by this fleet's CA: enroll the agent with a join token")
	}
	leaf := ti.State.VerifiedChains[0][0]
	id, err := pki.NodeIdentity(leaf)
	if err != nil {
		return pki.NodeID{}, status.Error(codes.Unauthenticated, "client certificate carries no node identity")
	}
	if err := c.Nodes.Authorize(id, pki.SerialHex(leaf)); err != nil {
		if c.NodeRefused != nil {
			c.NodeRefused(ctx, fullMethod, id, pki.SerialHex(leaf), err)
		}
		return pki.NodeID{}, status.Errorf(codes.Unauthenticated, "node %s refused: %v", id.ID, err)
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
