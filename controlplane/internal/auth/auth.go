// Package auth decides who may call what on the control plane's gRPC server.
//
// Each method's rule comes from access.Methods (one table; a method missing
// from it is refused for everyone):
//   - access.ByAnyone: whoever reaches the port (health, reflection, and
//     Enroll, whose join token is checked by its handler).
//   - access.ByAgent: an agent, by its mTLS client certificate. The TLS layer
//     has verified the chain against the fleet CA; here the certificate must
//     still speak for its node (Authorizer: the node's current epoch, and its
//     newest certificate or the one before it within a short grace).
//   - access.ByIdentity: an operator or program, by a bearer secret: the
//     admin token of forlockctl.yaml (the bootstrap identity, role admin,
//     whole fleet) or an identity's secret (forlockctl access create), which
//     must be neither revoked nor expired at this call. Its role must hold
//     the method's permission; the principal is put in the context for the
//     handlers, which apply its scope.
//
// Every refused credential (admin token, identity secret, client
// certificate, and the join tokens Enroll checks through Refuse) is logged
// with the client's address, the method and the reason, never the secret,
// and counted per address by a limit.Failures: an address over the limit
// gets ResourceExhausted for its wrong credentials without further work. A
// valid credential is checked first and never counted or throttled, and the
// connection it came on stops counting against the per-address connection
// cap (limit.Conns.Trust). A valid identity refused for lack of permission
// is not a credential failure: it gets PermissionDenied and is audited
// (Checker.Denied).
package auth

import (
	"context"
	"crypto/x509"
	"errors"
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

	"github.com/forlock/fleet/controlplane/internal/access"
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

// Identities finds the identity whose secret has this hash
// (access.ErrUnknown when none).
type Identities func(hash []byte) (access.Identity, error)

type nodeKey struct{}

type principalKey struct{}

// PrincipalFromContext returns the authenticated operator identity of a
// call; ok is false for agent and open calls.
func PrincipalFromContext(ctx context.Context) (access.Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(access.Principal)
	return p, ok
}

// WithPrincipal returns ctx carrying p, for tests of handlers.
func WithPrincipal(ctx context.Context, p access.Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

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
	// Identities looks up identity secrets; nil accepts the admin token
	// only.
	Identities Identities
	// Denied, if set, is told of every call by a valid identity refused for
	// lack of permission (the control plane audits it).
	Denied func(ctx context.Context, p access.Principal, method string, err error)
	// Failed, if set, is told of every refused credential (the control
	// plane aggregates them into the audit log).
	Failed func(ctx context.Context, method string, err error)
	// Now is the clock for expiry; nil means time.Now.
	Now func() time.Time
	// NodeRefused, if set, is told of every agent call refused by Nodes,
	// with its method and the certificate's serial: the control plane logs a
	// superseded certificate as a possible theft, and quarantines its node
	// when it tried to renew.
	NodeRefused func(ctx context.Context, method string, id pki.NodeID, serial string, err error)
	// Adopt, if set, gets a second look at a certificate Nodes refused: on
	// a control plane restored from a snapshot, a certificate issued after
	// the snapshot may become its node's live one (registry.Adopt). It
	// returns nil to accept, else the error to give.
	Adopt func(id pki.NodeID, leaf *x509.Certificate, refusal error) error
	// Refused, if set, counts every refused credential: credential is
	// agent_certificate, bearer_token or join_token, reason is blocked (the
	// address is over its failure limit) or refused (the metrics).
	Refused func(credential, reason string)
	// Failures counts refused credentials per client address.
	Failures *limit.Failures
	// Conns, if set, learns which connections carried a valid credential.
	Conns Trusted
	// Log receives one line per refused credential.
	Log *slog.Logger
}

func (c *Checker) check(ctx context.Context, fullMethod string) (context.Context, error) {
	rule := access.RuleFor(fullMethod)
	switch rule.Caller {
	case access.ByAnyone:
		return ctx, nil
	case access.ByAgent:
		id, err := c.nodeIdentity(ctx, fullMethod)
		if err != nil {
			return nil, c.refuse(ctx, fullMethod, CredentialAgent, err)
		}
		return context.WithValue(ctx, nodeKey{}, id), nil
	case access.ByIdentity:
		p, err := c.principal(ctx)
		if err != nil {
			return nil, c.refuse(ctx, fullMethod, CredentialBearer, err)
		}
		c.Accept(ctx)
		if err := p.Need(rule.Permission); err != nil {
			err = status.Errorf(codes.PermissionDenied, "%v: ask an admin for a role that has it (forlockctl access whoami shows yours)", err)
			if c.Denied != nil {
				c.Denied(ctx, p, fullMethod, err)
			}
			return nil, err
		}
		return WithPrincipal(ctx, p), nil
	}
	return nil, status.Errorf(codes.PermissionDenied, "method %s is not allowed", fullMethod)
}

// Refuse handles a credential that a handler refused (Enroll's join token):
// it logs and counts the failure for the client's address and returns err,
// or ResourceExhausted while the address is blocked. err's message must hold
// no secret; it is logged as the reason.
func (c *Checker) Refuse(ctx context.Context, err error) error {
	method, _ := grpc.Method(ctx)
	return c.refuse(ctx, method, CredentialJoinToken, err)
}

// The credentials Refused names (kinds of credential, not credentials).
//
//nolint:gosec // G101: names, not secrets
const (
	CredentialAgent     = "agent_certificate"
	CredentialBearer    = "bearer_token"
	CredentialJoinToken = "join_token"
)

// Accept records that a call carried a valid credential: its connection no
// longer counts against the per-address cap on unauthenticated connections.
func (c *Checker) Accept(ctx context.Context) {
	if p, ok := peer.FromContext(ctx); ok && c.Conns != nil {
		c.Conns.Trust(p.Addr)
	}
}

func (c *Checker) refuse(ctx context.Context, method, credential string, err error) error {
	var addr net.Addr
	if p, ok := peer.FromContext(ctx); ok {
		addr = p.Addr
	}
	key := limit.Key(addr)
	if c.Failed != nil {
		c.Failed(ctx, method, err)
	}
	if c.Failures != nil {
		if left, blocked := c.Failures.Blocked(key); blocked {
			c.count(credential, "blocked")
			// Not logged one by one: the block was, and the request log
			// has every call with its client and code.
			return tooMany(key, left)
		}
	}
	c.count(credential, "refused")
	c.log().WarnContext(ctx, "authentication failed", "client", limit.Host(addr), "method", method, "reason", status.Convert(err).Message())
	if c.Failures != nil {
		if block, started := c.Failures.Fail(key); started {
			c.log().WarnContext(ctx, "client blocked: too many failed authentication attempts", "client", limit.Host(addr),
				"method", method, "reason", "failure limit reached", "address", key, "failures", c.Failures.Max(), "blocked_for", block.String())
		}
	}
	return err
}

func (c *Checker) count(credential, reason string) {
	if c.Refused != nil {
		c.Refused(credential, reason)
	}
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
	err = c.Nodes.Authorize(id, pki.SerialHex(leaf))
	if err != nil && c.Adopt != nil {
		err = c.Adopt(id, leaf, err)
	}
	if err != nil {
		if c.NodeRefused != nil {
			c.NodeRefused(ctx, fullMethod, id, pki.SerialHex(leaf), err)
		}
		return pki.NodeID{}, status.Errorf(codes.Unauthenticated, "node %s refused: %v", id.ID, err)
	}
	return id, nil
}

// principal checks the bearer secret: the admin token or an identity's.
func (c *Checker) principal(ctx context.Context) (access.Principal, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	vals := md.Get("authorization")
	if len(vals) != 1 {
		return access.Principal{}, status.Error(codes.Unauthenticated, "missing admin token or identity secret: send \"authorization: Bearer <token>\" (forlockctl --token or FORLOCK_TOKEN)")
	}
	secret, ok := strings.CutPrefix(vals[0], "Bearer ")
	if !ok {
		return access.Principal{}, status.Error(codes.Unauthenticated, "authorization must be \"Bearer <token>\"")
	}
	if strings.HasPrefix(secret, tokens.AccessPrefix) && c.Identities != nil {
		return c.identity(secret)
	}
	tok, err := tokens.ParseAdmin(secret)
	if err != nil || !tokens.Equal(tok.Hash, c.Admin()) {
		return access.Principal{}, status.Error(codes.Unauthenticated, "admin token refused")
	}
	return access.Bootstrap(), nil
}

func (c *Checker) identity(secret string) (access.Principal, error) {
	tok, err := tokens.ParseAccess(secret)
	if err != nil {
		return access.Principal{}, status.Error(codes.Unauthenticated, "credential refused: malformed")
	}
	id, err := c.Identities(tok.Hash)
	if err != nil {
		if errors.Is(err, access.ErrUnknown) {
			return access.Principal{}, status.Error(codes.Unauthenticated, "credential refused: unknown, revoked or rotated")
		}
		return access.Principal{}, status.Error(codes.Unavailable, "credential check failed: retry")
	}
	// The index holds the hash; compare in constant time all the same.
	if !tokens.Equal(id.Hash, tok.Hash) {
		return access.Principal{}, status.Error(codes.Unauthenticated, "credential refused: unknown, revoked or rotated")
	}
	now := time.Now()
	if c.Now != nil {
		now = c.Now()
	}
	if err := id.Usable(now); err != nil {
		return access.Principal{}, status.Errorf(codes.Unauthenticated, "credential refused: %v", err)
	}
	p, err := id.Principal()
	if err != nil {
		return access.Principal{}, status.Errorf(codes.Unauthenticated, "credential refused: %v", err)
	}
	return p, nil
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
