package auth

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
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

// TestPolicy: every method has exactly the caller the package comment
// gives it (from access.Methods); anything not listed is denied, even a
// method of a known service.
func TestPolicy(t *testing.T) {
	for method, want := range map[string]access.Caller{
		"/forlock.v1.AgentService/Enroll":                                access.ByAnyone,
		"/forlock.v1.AgentService/Connect":                               access.ByAgent,
		"/forlock.v1.AgentService/RenewCertificate":                      access.ByAgent,
		"/forlock.v1.AgentService/PushLogs":                              access.ByAgent,
		"/forlock.v1.NodeService/ListNodes":                              access.ByIdentity,
		"/forlock.v1.JobService/SubmitJob":                               access.ByIdentity,
		"/forlock.v1.LogService/StreamLogs":                              access.ByIdentity,
		"/forlock.v1.BackupService/GetArtifact":                          access.ByIdentity,
		"/forlock.v1.CertService/ListCertificates":                       access.ByIdentity,
		"/forlock.v1.ControlPlaneService/GetStatus":                      access.ByIdentity,
		"/forlock.v1.AuditService/VerifyAudit":                           access.ByIdentity,
		"/grpc.health.v1.Health/Check":                                   access.ByAnyone,
		"/grpc.reflection.v1.ServerReflection/ServerReflectionInfo":      access.ByAnyone,
		"/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo": access.ByAnyone,
		"/forlock.v1.NewService/Call":                                    access.ByNobody,
		"/forlock.v1.AgentServiceX/Enroll":                               access.ByNobody,
		"/forlock.v1.AgentService/EnrollX":                               access.ByNobody,
		"/forlock.v2.NodeService/ListNodes":                              access.ByNobody,
		"":                                                               access.ByNobody,
	} {
		require.Equal(t, want, access.RuleFor(method).Caller, method)
	}
}

type authorizer struct {
	err   error
	calls []string
}

func (a *authorizer) Authorize(id pki.NodeID, serial string) error {
	a.calls = append(a.calls, id.ID+"/"+serial)
	return a.err
}

type trusted struct{ addrs []string }

func (t *trusted) Trust(a net.Addr) { t.addrs = append(t.addrs, a.String()) }

func newChecker(t *testing.T, adminHash []byte) (*Checker, *bytes.Buffer) {
	t.Helper()
	var buf bytes.Buffer
	return &Checker{
		Nodes: &authorizer{}, Admin: func() []byte { return adminHash }, Log: slog.New(slog.NewTextHandler(&buf, nil)),
		Failures: limit.NewFailures(limit.FailureConfig{Max: 1000, Window: time.Hour, Block: time.Hour}),
	}, &buf
}

var clientAddr = &net.TCPAddr{IP: net.IPv4(192, 0, 2, 7), Port: 40000}

// incoming is a server-side context of a call from clientAddr with the
// given authorization values.
func incoming(auth ...string) context.Context {
	ctx := peer.NewContext(context.Background(), &peer.Peer{Addr: clientAddr})
	md := metadata.MD{}
	for _, a := range auth {
		md.Append("authorization", a)
	}
	return metadata.NewIncomingContext(ctx, md)
}

// TestAdminToken: the bearer credential is parsed strictly and its hash
// compared with the stored one; each refusal says what to do and never
// echoes the secret.
func TestAdminToken(t *testing.T) {
	tok, err := tokens.NewAdmin()
	require.NoError(t, err)
	other, err := tokens.NewAdmin()
	require.NoError(t, err)
	c, log := newChecker(t, tok.Hash)
	for name, tc := range map[string]struct {
		ctx context.Context
		msg string // "" for accepted
	}{
		"accepted":               {incoming("Bearer " + tok.Secret), ""},
		"no metadata":            {peer.NewContext(context.Background(), &peer.Peer{Addr: clientAddr}), "missing admin token"},
		"no authorization":       {incoming(), "missing admin token"},
		"two values":             {incoming("Bearer "+tok.Secret, "Bearer "+other.Secret), "missing admin token"},
		"empty":                  {incoming(""), `authorization must be "Bearer <token>"`},
		"no scheme":              {incoming(tok.Secret), `authorization must be "Bearer <token>"`},
		"scheme case":            {incoming("BEARER " + tok.Secret), `authorization must be "Bearer <token>"`},
		"two spaces":             {incoming("Bearer  " + tok.Secret), "admin token refused"},
		"other token":            {incoming("Bearer " + other.Secret), "admin token refused"},
		"join prefix":            {incoming("Bearer fjt_" + strings.TrimPrefix(tok.Secret, tokens.AdminPrefix)), "admin token refused"},
		"truncated":              {incoming("Bearer " + tok.Secret[:len(tok.Secret)-1]), "admin token refused"},
		"one character changed":  {incoming("Bearer " + tok.Secret[:len(tok.Secret)-1] + flip(tok.Secret[len(tok.Secret)-1])), "admin token refused"},
		"the hash, not a secret": {incoming("Bearer " + string(tok.Hash)), "admin token refused"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := c.check(tc.ctx, "/forlock.v1.NodeService/ListNodes")
			if tc.msg == "" {
				require.NoError(t, err)
				return
			}
			require.Equal(t, codes.Unauthenticated, status.Code(err))
			require.ErrorContains(t, err, tc.msg)
			require.NotContains(t, err.Error(), tok.Secret)
		})
	}
	require.Contains(t, log.String(), "authentication failed")
	require.Contains(t, log.String(), "client=192.0.2.7")
	require.NotContains(t, log.String(), tok.Secret)
	require.NotContains(t, log.String(), other.Secret)
}

func flip(b byte) string {
	if b == 'A' {
		return "B"
	}
	return "A"
}

// TestAdminHashCompare: the constant-time comparison refuses a hash that
// differs in its first or its last byte, one of another length, and
// everything when no admin hash is set; it accepts only the equal one.
func TestAdminHashCompare(t *testing.T) {
	tok, err := tokens.NewAdmin()
	require.NoError(t, err)
	first := bytes.Clone(tok.Hash)
	first[0] ^= 1
	last := bytes.Clone(tok.Hash)
	last[len(last)-1] ^= 0x80
	for name, tc := range map[string]struct {
		stored []byte
		ok     bool
	}{
		"equal":            {bytes.Clone(tok.Hash), true},
		"first byte":       {first, false},
		"last byte":        {last, false},
		"prefix":           {tok.Hash[:31], false},
		"longer":           {append(bytes.Clone(tok.Hash), 0), false},
		"none set (nil)":   {nil, false},
		"none set (empty)": {[]byte{}, false},
	} {
		t.Run(name, func(t *testing.T) {
			require.Equal(t, tc.ok, tokens.Equal(tok.Hash, tc.stored))
			c, _ := newChecker(t, tc.stored)
			p, err := c.principal(incoming("Bearer " + tok.Secret))
			if tc.ok {
				require.NoError(t, err)
				require.Equal(t, access.Bootstrap(), p)
			} else {
				require.Equal(t, codes.Unauthenticated, status.Code(err))
			}
		})
	}
}

// TestFailuresBlock: refused credentials are counted per address; the one
// that reaches the limit blocks the address, other addresses go on, and a
// valid credential from the blocked address still passes and frees its
// connection from the unauthenticated cap.
func TestFailuresBlock(t *testing.T) {
	tok, err := tokens.NewAdmin()
	require.NoError(t, err)
	c, log := newChecker(t, tok.Hash)
	c.Failures = limit.NewFailures(limit.FailureConfig{Max: 2, Window: time.Hour, Block: time.Minute})
	tr := &trusted{}
	c.Conns = tr
	const method = "/forlock.v1.JobService/ListJobs"
	for range 2 {
		_, err := c.check(incoming("Bearer fat_nope"), method)
		require.Equal(t, codes.Unauthenticated, status.Code(err))
	}
	_, err = c.check(incoming("Bearer fat_nope"), method)
	require.Equal(t, codes.ResourceExhausted, status.Code(err))
	require.ErrorContains(t, err, "too many failed authentication attempts from 192.0.2.7; retry after 1m0s")
	// A join token refused by Enroll counts and is blocked the same way.
	enrollCtx := grpc.NewContextWithServerTransportStream(incoming(), &methodStream{method: "/forlock.v1.AgentService/Enroll"})
	err = c.Refuse(enrollCtx, status.Error(codes.Unauthenticated, "join token unknown"))
	require.Equal(t, codes.ResourceExhausted, status.Code(err))

	other := peer.NewContext(metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", "Bearer fat_nope")),
		&peer.Peer{Addr: &net.TCPAddr{IP: net.IPv4(192, 0, 2, 8), Port: 1}})
	_, err = c.check(other, method)
	require.Equal(t, codes.Unauthenticated, status.Code(err), "another address is not blocked")

	require.Empty(t, tr.addrs)
	_, err = c.check(incoming("Bearer "+tok.Secret), method)
	require.NoError(t, err)
	require.Equal(t, []string{clientAddr.String()}, tr.addrs)
	require.Contains(t, log.String(), "client blocked")
}

// methodStream lets grpc.Method find a method in a test context.
type methodStream struct {
	grpc.ServerTransportStream
	method string
}

func (m *methodStream) Method() string { return m.method }

// nodeCert issues a client certificate for id from a fresh CA and returns
// the context of a call that presented it, as the TLS layer leaves it.
func nodeCert(t *testing.T, id pki.NodeID) (context.Context, *x509.Certificate) {
	t.Helper()
	ca, err := pki.NewCA(time.Now(), "test CA")
	require.NoError(t, err)
	key, err := pki.GenerateKey()
	require.NoError(t, err)
	der, err := pki.CreateCSR(key, "web-1")
	require.NoError(t, err)
	csr, err := pki.ParseCSR(der)
	require.NoError(t, err)
	cert, err := ca.IssueNode(time.Now(), csr, id, time.Hour)
	require.NoError(t, err)
	info := credentials.TLSInfo{State: tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{cert, ca.Certificate()}}}}
	return peer.NewContext(context.Background(), &peer.Peer{Addr: clientAddr, AuthInfo: info}), cert
}

// TestNodeIdentity: an agent call carries its node identity from a verified
// client certificate, asked of the Authorizer with the certificate's serial;
// a refusal is reported to NodeRefused and is Unauthenticated.
func TestNodeIdentity(t *testing.T) {
	id := pki.NodeID{ID: "0123456789abcdef0123456789abcdef", Epoch: 3}
	ctx, cert := nodeCert(t, id)
	c, _ := newChecker(t, nil)
	az := &authorizer{}
	c.Nodes = az
	var refused []string
	c.NodeRefused = func(_ context.Context, method string, got pki.NodeID, serial string, err error) {
		refused = append(refused, method+" "+got.ID+" "+serial+" "+err.Error())
	}
	const method = "/forlock.v1.AgentService/Connect"

	out, err := c.check(ctx, method)
	require.NoError(t, err)
	got, ok := NodeFromContext(out)
	require.True(t, ok)
	require.Equal(t, id, got)
	require.Equal(t, []string{id.ID + "/" + pki.SerialHex(cert)}, az.calls)
	_, ok = NodeFromContext(ctx)
	require.False(t, ok, "only the checked context carries the identity")

	az.err = errors.New("certificate superseded")
	_, err = c.check(ctx, method)
	require.Equal(t, codes.Unauthenticated, status.Code(err))
	require.ErrorContains(t, err, "node "+id.ID+" refused: certificate superseded")
	require.Equal(t, []string{method + " " + id.ID + " " + pki.SerialHex(cert) + " certificate superseded"}, refused)

	for name, ctx := range map[string]context.Context{
		"no peer":           context.Background(),
		"no TLS":            peer.NewContext(context.Background(), &peer.Peer{Addr: clientAddr}),
		"no verified chain": peer.NewContext(context.Background(), &peer.Peer{Addr: clientAddr, AuthInfo: credentials.TLSInfo{}}),
		"admin token only":  incoming("Bearer fat_whatever"),
	} {
		_, err := c.check(ctx, method)
		require.Equal(t, codes.Unauthenticated, status.Code(err), name)
	}
	// A verified certificate without a node identity (here the CA's own)
	// is refused before the Authorizer is asked.
	ca, err := pki.NewCA(time.Now(), "test CA")
	require.NoError(t, err)
	az.calls = nil
	caOnly := peer.NewContext(context.Background(), &peer.Peer{Addr: clientAddr, AuthInfo: credentials.TLSInfo{State: tls.ConnectionState{
		VerifiedChains: [][]*x509.Certificate{{ca.Certificate()}}}}})
	_, err = c.check(caOnly, method)
	require.Equal(t, codes.Unauthenticated, status.Code(err))
	require.ErrorContains(t, err, "client certificate carries no node identity")
	require.Empty(t, az.calls)
}

// TestInterceptors: the unary and stream interceptors run the handler only
// for an accepted call, with the checked context; a denied method never
// reaches it.
func TestInterceptors(t *testing.T) {
	tok, err := tokens.NewAdmin()
	require.NoError(t, err)
	c, _ := newChecker(t, tok.Hash)
	ran := 0
	h := func(context.Context, any) (any, error) { ran++; return "ok", nil }
	_, err = c.Unary(incoming(), nil, &grpc.UnaryServerInfo{FullMethod: "/forlock.v1.NodeService/ListNodes"}, h)
	require.Equal(t, codes.Unauthenticated, status.Code(err))
	_, err = c.Unary(incoming("Bearer "+tok.Secret), nil, &grpc.UnaryServerInfo{FullMethod: "/forlock.v1.Other/Call"}, h)
	require.Equal(t, codes.PermissionDenied, status.Code(err))
	require.ErrorContains(t, err, "method /forlock.v1.Other/Call is not allowed")
	require.Zero(t, ran)
	resp, err := c.Unary(incoming("Bearer "+tok.Secret), nil, &grpc.UnaryServerInfo{FullMethod: "/forlock.v1.NodeService/ListNodes"}, h)
	require.NoError(t, err)
	require.Equal(t, "ok", resp)
	require.Equal(t, 1, ran)

	id := pki.NodeID{ID: "0123456789abcdef0123456789abcdef", Epoch: 1}
	ctx, _ := nodeCert(t, id)
	var seen pki.NodeID
	sh := func(_ any, ss grpc.ServerStream) error { seen, _ = NodeFromContext(ss.Context()); return nil }
	require.NoError(t, c.Stream(nil, &serverStream{ctx: ctx}, &grpc.StreamServerInfo{FullMethod: "/forlock.v1.AgentService/Connect"}, sh))
	require.Equal(t, id, seen)
	err = c.Stream(nil, &serverStream{ctx: incoming()}, &grpc.StreamServerInfo{FullMethod: "/forlock.v1.AgentService/Connect"}, sh)
	require.Equal(t, codes.Unauthenticated, status.Code(err))
}

type serverStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *serverStream) Context() context.Context { return s.ctx }
