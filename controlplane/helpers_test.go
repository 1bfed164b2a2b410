package controlplane

import (
	"context"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/forlock/fleet/internal/ctlconfig"
	"github.com/forlock/fleet/internal/pki"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// env is one in-process control plane on loopback with real TLS and a real
// bbolt file, plus an admin client.
type env struct {
	t       *testing.T
	dir     string
	srv     *Server
	cancel  context.CancelFunc
	done    chan error
	caPEM   []byte
	nodes   forlockv1.NodeServiceClient
	adminMD metadata.MD
}

func startEnv(t *testing.T, mod func(*Config)) *env {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "cp")
	return startEnvIn(t, dir, mod)
}

func startEnvIn(t *testing.T, dir string, mod func(*Config)) *env {
	t.Helper()
	cfg := Config{DataDir: dir, Listen: "127.0.0.1:0", HeartbeatInterval: 200 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))}
	if mod != nil {
		mod(&cfg)
	}
	srv, err := New(cfg)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	e := &env{t: t, dir: dir, srv: srv, cancel: cancel, done: make(chan error, 1)}
	go func() { e.done <- srv.Run(ctx) }()
	t.Cleanup(e.stop)

	f, err := ctlconfig.Load(srv.CtlConfigFile())
	require.NoError(t, err)
	c, err := f.Context("")
	require.NoError(t, err)
	e.caPEM, err = os.ReadFile(c.CAFile)
	require.NoError(t, err)
	conn := e.dial(nil)
	e.nodes = forlockv1.NewNodeServiceClient(conn)
	e.adminMD = metadata.Pairs("authorization", "Bearer "+c.Token)
	return e
}

func (e *env) stop() {
	if e.cancel == nil {
		return
	}
	e.cancel()
	e.cancel = nil
	select {
	case err := <-e.done:
		require.NoError(e.t, err)
	case <-time.After(10 * time.Second):
		e.t.Fatal("control plane did not stop within 10s")
	}
}

func (e *env) admin() context.Context {
	ctx, cancel := context.WithTimeout(metadata.NewOutgoingContext(context.Background(), e.adminMD), 10*time.Second)
	e.t.Cleanup(cancel)
	return ctx
}

// dial opens a TLS connection trusting the fleet CA, presenting cert if set.
func (e *env) dial(cert *tls.Certificate) *grpc.ClientConn {
	return dialWith(e.t, e.srv.Addr().String(), e.caPEM, cert)
}

func dialWith(t *testing.T, addr string, caPEM []byte, cert *tls.Certificate) *grpc.ClientConn {
	t.Helper()
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(caPEM))
	cfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13, ServerName: "127.0.0.1"}
	if cert != nil {
		// Always present the certificate, even one the server's CA list
		// does not name, so refusals are tested at the server.
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

func (e *env) token(uses uint32, ttl time.Duration, lbls map[string]string) string {
	e.t.Helper()
	resp, err := e.nodes.CreateJoinToken(e.admin(), &forlockv1.CreateJoinTokenRequest{
		Ttl: durationpb.New(ttl), MaxUses: uses, Labels: lbls,
	})
	require.NoError(e.t, err)
	return resp.GetSecret()
}

// identity is what an agent holds after enrolling.
type identity struct {
	key    *ecdsa.PrivateKey
	resp   *forlockv1.EnrollResponse
	tlsCrt tls.Certificate
}

func newEnrollRequest(t *testing.T, token, name string) (*forlockv1.EnrollRequest, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := pki.GenerateKey()
	require.NoError(t, err)
	csr, err := pki.CreateCSR(key, name)
	require.NoError(t, err)
	return &forlockv1.EnrollRequest{JoinToken: token, Name: name, Csr: csr, Facts: &forlockv1.HostFacts{Hostname: name}}, key
}

func (e *env) enroll(token, name string) (*identity, error) {
	key, err := pki.GenerateKey()
	require.NoError(e.t, err)
	return e.enrollWith(token, name, key)
}

// enrollWith enrolls with a key the caller holds, e.g. the node's own.
func (e *env) enrollWith(token, name string, key *ecdsa.PrivateKey) (*identity, error) {
	csr, err := pki.CreateCSR(key, name)
	require.NoError(e.t, err)
	req := &forlockv1.EnrollRequest{JoinToken: token, Name: name, Csr: csr, Facts: &forlockv1.HostFacts{Hostname: name}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := forlockv1.NewAgentServiceClient(e.dial(nil)).Enroll(ctx, req)
	if err != nil {
		return nil, err
	}
	certs, err := pki.ParseCertsPEM(resp.GetCertificateChain())
	require.NoError(e.t, err)
	return &identity{key: key, resp: resp, tlsCrt: tls.Certificate{Certificate: [][]byte{certs[0].Raw}, PrivateKey: key, Leaf: certs[0]}}, nil
}

func (e *env) mustEnroll(token, name string) *identity {
	e.t.Helper()
	id, err := e.enroll(token, name)
	require.NoError(e.t, err)
	return id
}
