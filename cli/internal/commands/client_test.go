package commands

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

func TestExplainRPC(t *testing.T) {
	s := settings{address: "cp:7443", from: "--addr", timeout: 5 * time.Second}
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"unavailable", status.Error(codes.Unavailable, "connection refused"),
			"cannot reach the control plane at cp:7443: is it running? check --addr (address from --addr; connection refused)"},
		{"tls", status.Error(codes.Unavailable, "authentication handshake failed: x509: certificate signed by unknown authority"),
			"TLS with the control plane at cp:7443 failed: check --ca-file / FORLOCK_CA_FILE points at the control plane's CA"},
		{"unauthenticated", status.Error(codes.Unauthenticated, "invalid token"),
			"the token was refused: check --token / FORLOCK_TOKEN or the context (invalid token)"},
		{"not found", status.Error(codes.NotFound, `node "web-9" not found`), `node "web-9" not found`},
		{"invalid argument", status.Error(codes.InvalidArgument, "label selector: bad term"), "label selector: bad term"},
		{"permission denied", status.Error(codes.PermissionDenied, "admin token required"), "permission denied: admin token required"},
		{"deadline", status.Error(codes.DeadlineExceeded, "context deadline exceeded"),
			"the control plane at cp:7443 did not answer within 5s: check the network or raise --timeout"},
		{"canceled", status.Error(codes.Canceled, "context canceled"), "interrupted"},
		{"unimplemented", status.Error(codes.Unimplemented, "unknown method"), "does not support this call"},
		{"internal", status.Error(codes.Internal, "boom"), "call failed (Internal): boom"},
		{"not a status", errors.New("write output: broken pipe"), "write output: broken pipe"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := explainRPC(tt.err, s)
			require.ErrorContains(t, got, tt.want)
			if st, ok := status.FromError(tt.err); ok {
				require.Equal(t, st.Code(), status.Code(got), "the status stays reachable")
			}
		})
	}
}

func TestBearerTokenNeedsTransportSecurity(t *testing.T) {
	tok := bearerToken("s3cret")
	require.True(t, tok.RequireTransportSecurity())
	md, err := tok.GetRequestMetadata(context.Background())
	require.NoError(t, err)
	require.Equal(t, map[string]string{"authorization": "Bearer s3cret"}, md)
}

// startTLS serves gRPC over TLS with handler answering every method. It is
// not a NodeService: it only records what reached the wire.
func startTLS(t *testing.T, cfg *tls.Config, handler grpc.StreamHandler) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(cfg)), grpc.UnknownServiceHandler(handler))
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(l)
	}()
	t.Cleanup(func() {
		srv.Stop()
		<-done
	})
	return l.Addr().String()
}

func TestWireTLSAndToken(t *testing.T) {
	pki := newTestPKI(t)
	type seen struct {
		auth    []string
		version uint16
		method  string
	}
	got := make(chan seen, 1)
	addr := startTLS(t, &tls.Config{Certificates: []tls.Certificate{pki.server}}, func(_ any, stream grpc.ServerStream) error {
		md, _ := metadata.FromIncomingContext(stream.Context())
		var v uint16
		if p, ok := peer.FromContext(stream.Context()); ok {
			if ti, ok := p.AuthInfo.(credentials.TLSInfo); ok {
				v = ti.State.Version
			}
		}
		m, _ := grpc.MethodFromServerStream(stream)
		got <- seen{auth: md.Get("authorization"), version: v, method: m}
		return status.Error(codes.Unauthenticated, "unknown token")
	})

	env := map[string]string{envAddr: addr, envCAFile: pki.caFile, envToken: "s3cret-token"}
	code, stdout, stderr := run(t, env, "nodes", "get", "web-1")
	require.Equal(t, ExitFailure, code)
	require.Empty(t, stdout)
	require.Equal(t, "forlockctl: the token was refused: check --token / FORLOCK_TOKEN or the context (unknown token)\n", stderr)

	s := <-got
	require.Equal(t, []string{"Bearer s3cret-token"}, s.auth)
	require.Equal(t, uint16(tls.VersionTLS13), s.version)
	require.Equal(t, "/forlock.v1.NodeService/GetNode", s.method)
}

func TestWireRejectsUntrustedServer(t *testing.T) {
	served := newTestPKI(t)
	trusted := newTestPKI(t)
	addr := startTLS(t, &tls.Config{Certificates: []tls.Certificate{served.server}}, func(any, grpc.ServerStream) error {
		t.Error("a call reached a server the client must not trust")
		return nil
	})

	env := map[string]string{envAddr: addr, envCAFile: trusted.caFile, envToken: "tok"}
	code, _, stderr := run(t, env, "tokens", "list")
	require.Equal(t, ExitFailure, code)
	require.Contains(t, stderr, "forlockctl: TLS with the control plane at "+addr+" failed: check --ca-file")
}

func TestWireRequiresTLS13(t *testing.T) {
	pki := newTestPKI(t)
	addr := startTLS(t, &tls.Config{Certificates: []tls.Certificate{pki.server}, MaxVersion: tls.VersionTLS12}, func(any, grpc.ServerStream) error {
		t.Error("a call went through over TLS 1.2")
		return nil
	})

	env := map[string]string{envAddr: addr, envCAFile: pki.caFile, envToken: "tok"}
	code, _, stderr := run(t, env, "nodes", "list")
	require.Equal(t, ExitFailure, code)
	require.Contains(t, stderr, "forlockctl: TLS with the control plane at "+addr+" failed")
}
