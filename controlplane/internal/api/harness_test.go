package api

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	"github.com/forlock/fleet/controlplane/internal/audit"
	"github.com/forlock/fleet/controlplane/internal/auth"
	"github.com/forlock/fleet/controlplane/internal/jobs"
	"github.com/forlock/fleet/controlplane/internal/limit"
	"github.com/forlock/fleet/controlplane/internal/logs"
	"github.com/forlock/fleet/controlplane/internal/registry"
	"github.com/forlock/fleet/controlplane/internal/store"
	"github.com/forlock/fleet/controlplane/internal/tokens"
	"github.com/forlock/fleet/controlplane/internal/wal"
	"github.com/forlock/fleet/internal/keys"
	"github.com/forlock/fleet/internal/pki"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// testServer is the control plane's API on a real bbolt store in
// t.TempDir(), with a real registry and job engine, served over bufconn
// with the real server's TLS (ServerTLS, a fleet CA, client certificates
// verified when given, the per-address connection cap), interceptor chain
// (Interceptors) and service registration (Services.Register). The clients
// below call as an operator: TLS without a client certificate; agents dial
// their own connections with the certificate Enroll gave them (agentConn).
type testServer struct {
	t     testing.TB
	st    *store.Store
	reg   *registry.Registry
	ca    *pki.CA
	admin tokens.Token
	lis   *bufconn.Listener
	conn  *grpc.ClientConn
	logs  *syncBuffer
	eng   *jobs.Engine
	// kek, archive and archiveKeys are set with serverOptions.walRotation.
	kek         *keys.File
	archive     *wal.Archive
	archiveKeys *wal.Keys

	Nodes   forlockv1.NodeServiceClient
	Jobs    forlockv1.JobServiceClient
	Agents  forlockv1.AgentServiceClient
	Backups forlockv1.BackupServiceClient
	Certs   forlockv1.CertServiceClient
	Logs    forlockv1.LogServiceClient
	Status  forlockv1.ControlPlaneServiceClient
	Health  healthpb.HealthClient
}

// serverOptions adjust a test server before it starts.
type serverOptions struct {
	// failures is the auth failure limit per address (all bufconn clients
	// share one address); 0: the default.
	failures int
	// requireReason: destructive calls need a reason (Auditor.RequireReason).
	requireReason bool
	// services is called on the services before they are registered.
	services func(*Services)
	// preAudit builds the server as it was before identities and the audit
	// log: the checker accepts the admin token only (no Identities, Denied
	// or Failed), the chain has no audit interceptor and the store no audit
	// log. Benchmarks compare it with the server of today.
	preAudit bool
	// log, if set, receives the server's log at info level, the control
	// plane's default, instead of the debug log tests read.
	log io.Writer
	// walRotation, when set, gives the server a key-encryption key (a
	// key file), archive keys rotated this often and a WAL archive.
	walRotation time.Duration
}

func newTestServer(tb testing.TB, o serverOptions) *testServer {
	tb.Helper()
	buf := &syncBuffer{}
	log := slog.New(slog.NewJSONHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if o.log != nil {
		log = slog.New(slog.NewJSONHandler(o.log, nil))
	}
	st, err := store.Open(filepath.Join(tb.TempDir(), "controlplane.db"))
	require.NoError(tb, err)
	reg, err := registry.New(st, time.Hour, log)
	require.NoError(tb, err)
	var kek *keys.File
	if o.walRotation > 0 {
		kek, err = keys.LoadOrCreateFile(filepath.Join(tb.TempDir(), "backup.key"))
		require.NoError(tb, err)
	}
	jcfg := jobs.Config{Store: st, Registry: reg, Logger: log}
	if kek != nil {
		jcfg.Keys = kek
	}
	eng, err := jobs.New(jcfg)
	require.NoError(tb, err)
	ca, err := pki.NewCA(time.Now(), "test fleet CA")
	require.NoError(tb, err)
	admin, err := tokens.NewAdmin()
	require.NoError(tb, err)

	agents := &AgentAPI{Store: st, Registry: reg, Jobs: eng, CA: ca, Log: log, CertTTL: time.Hour, CertGrace: time.Minute,
		Broker: logs.NewBroker()}
	var archive *wal.Archive
	if kek != nil {
		agents.ArchiveKeys = wal.NewKeys(st, kek, o.walRotation, nil)
		archive = wal.New(wal.Config{Store: st, Keys: agents.ArchiveKeys, Checks: reg, Jobs: eng, Log: log})
		agents.WAL = archive
	}
	checker := &auth.Checker{Nodes: reg, Admin: func() []byte { return admin.Hash }, NodeRefused: agents.NodeRefused, Log: log,
		Failures: limit.NewFailures(limit.FailureConfig{Max: o.failures, Window: time.Hour, Block: time.Hour})}
	dir := tb.TempDir()
	auditKey, err := audit.LoadOrCreateKey(filepath.Join(dir, "audit.key"))
	require.NoError(tb, err)
	auditor := &Auditor{Store: st, Failures: &audit.Failures{}, Log: log, RequireReason: o.requireReason}
	var opts []grpc.ServerOption
	if o.preAudit {
		// Interceptors as it was before the audit interceptor.
		recoverU, recoverS := Recover(log)
		logU, logS := Log(log)
		opts = []grpc.ServerOption{grpc.ChainUnaryInterceptor(recoverU, logU, checker.Unary), grpc.ChainStreamInterceptor(recoverS, logS, checker.Stream)}
	} else {
		// As the control plane does: the checkpoint file beside the database.
		st.SetAuditLog(audit.New(auditKey, 0, &audit.File{Path: filepath.Join(dir, "audit-checkpoints.jsonl")}))
		checker.Identities, checker.Denied, checker.Failed = st.IdentityByHash, auditor.Denied, auditor.Failed
		opts = Interceptors(log, checker, auditor)
	}
	agents.Gate = checker
	svc := Services{
		Agents:       agents,
		Logs:         &LogAPI{Registry: reg, Broker: agents.Broker, Log: log},
		Backups:      &BackupAPI{Store: st, Registry: reg, Jobs: eng, Log: log},
		Certs:        &CertAPI{Store: st, Registry: reg, Log: log},
		Jobs:         &JobAPI{Jobs: eng, Registry: reg, Log: log},
		Nodes:        &NodeAPI{Store: st, Registry: reg, Log: log},
		ControlPlane: &ControlPlaneAPI{Disk: st},
		Access:       &AccessAPI{Store: st, Log: log},
		Audit:        &AuditAPI{Store: st, Key: auditKey.Public(), Log: log},
	}
	if o.services != nil {
		o.services(&svc)
	}
	serverKey, err := pki.GenerateKey()
	require.NoError(tb, err)
	serverCert, err := ca.IssueServer(time.Now(), []string{"controlplane.test"}, serverKey, time.Hour)
	require.NoError(tb, err)
	conns := limit.NewConns(limit.ConnConfig{Log: log})
	checker.Conns = conns
	creds := conns.Credentials(credentials.NewTLS(ServerTLS(tls.Certificate{Certificate: [][]byte{serverCert.Raw}, PrivateKey: serverKey}, ca.Pool())))
	srv := grpc.NewServer(append(opts, grpc.Creds(creds))...)
	svc.Register(srv)
	healthpb.RegisterHealthServer(srv, health.NewServer())

	lis := bufconn.Listen(1 << 20)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = srv.Serve(lis) }()
	engineErr := make(chan error, 1)
	go func() { defer wg.Done(); engineErr <- eng.Run(ctx) }()

	s := &testServer{t: tb, st: st, reg: reg, ca: ca, admin: admin, lis: lis, logs: buf, eng: eng, kek: kek, archive: archive, archiveKeys: agents.ArchiveKeys}
	s.conn = s.dial(nil)
	tb.Cleanup(func() {
		_ = s.conn.Close()
		srv.Stop()
		cancel()
		wg.Wait()
		require.NoError(tb, <-engineErr)
		require.NoError(tb, st.Close())
	})
	conn := s.conn
	s.Nodes, s.Jobs = forlockv1.NewNodeServiceClient(conn), forlockv1.NewJobServiceClient(conn)
	s.Agents, s.Backups = forlockv1.NewAgentServiceClient(conn), forlockv1.NewBackupServiceClient(conn)
	s.Certs, s.Logs = forlockv1.NewCertServiceClient(conn), forlockv1.NewLogServiceClient(conn)
	s.Status, s.Health = forlockv1.NewControlPlaneServiceClient(conn), healthpb.NewHealthClient(conn)
	return s
}

// dial opens a TLS connection to the server that trusts the fleet CA and
// presents cert, if given. The test closes it.
func (s *testServer) dial(cert *tls.Certificate) *grpc.ClientConn {
	s.t.Helper()
	cfg := &tls.Config{RootCAs: s.ca.Pool(), ServerName: "controlplane.test", MinVersion: tls.VersionTLS13}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	conn, err := grpc.NewClient("passthrough:///bufconn",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return s.lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	require.NoError(s.t, err)
	return conn
}

// agentConn is an enrolled agent: its node ID, key, certificate and a
// connection that presents it.
type agentConn struct {
	id   string
	key  *ecdsa.PrivateKey
	cert tls.Certificate
	conn *grpc.ClientConn
	api  forlockv1.AgentServiceClient
}

// agent enrolls name as an agent does and connects with its certificate.
func (s *testServer) agent(name string) *agentConn {
	s.t.Helper()
	tok, err := s.Nodes.CreateJoinToken(s.ctx(), &forlockv1.CreateJoinTokenRequest{})
	require.NoError(s.t, err)
	resp, key, err := s.enrollWith(tok.GetSecret(), name)
	require.NoError(s.t, err)
	a := &agentConn{id: resp.GetNodeId(), key: key}
	a.cert = s.clientCert(resp.GetCertificateChain(), key)
	a.conn = s.dial(&a.cert)
	s.t.Cleanup(func() { _ = a.conn.Close() })
	a.api = forlockv1.NewAgentServiceClient(a.conn)
	return a
}

// enrollWith enrolls name with a join token as an agent does: with a fresh
// key and a CSR signed by it.
func (s *testServer) enrollWith(secret, name string) (*forlockv1.EnrollResponse, *ecdsa.PrivateKey, error) {
	s.t.Helper()
	key, err := pki.GenerateKey()
	require.NoError(s.t, err)
	csr, err := pki.CreateCSR(key, name)
	require.NoError(s.t, err)
	resp, err := s.Agents.Enroll(s.t.Context(), &forlockv1.EnrollRequest{JoinToken: secret, Name: name, Csr: csr})
	return resp, key, err
}

func (s *testServer) clientCert(chainPEM []byte, key *ecdsa.PrivateKey) tls.Certificate {
	s.t.Helper()
	certs, err := pki.ParseCertsPEM(chainPEM)
	require.NoError(s.t, err)
	c := tls.Certificate{PrivateKey: key, Leaf: certs[0]}
	for _, x := range certs {
		c.Certificate = append(c.Certificate, x.Raw)
	}
	return c
}

// ctx is a context carrying the admin token, as forlockctl sends it.
func (s *testServer) ctx() context.Context {
	return metadata.AppendToOutgoingContext(s.t.Context(), "authorization", "Bearer "+s.admin.Secret)
}

// enroll makes a join token through the API and enrolls a node with it,
// as an agent does; it returns the node's ID.
func (s *testServer) enroll(name string, labels map[string]string) string {
	s.t.Helper()
	tok, err := s.Nodes.CreateJoinToken(s.ctx(), &forlockv1.CreateJoinTokenRequest{Labels: labels})
	require.NoError(s.t, err)
	resp, _, err := s.enrollWith(tok.GetSecret(), name)
	require.NoError(s.t, err)
	require.True(s.t, pki.ValidNodeID(resp.GetNodeId()), resp.GetNodeId())
	return resp.GetNodeId()
}

// requireStatus checks an error's code, that its message contains msg, and
// its ErrorInfo reason ("" for none).
func requireStatus(t *testing.T, err error, code codes.Code, msg, reason string) {
	t.Helper()
	require.Error(t, err)
	st := status.Convert(err)
	require.Equal(t, code, st.Code(), "%v", err)
	require.Contains(t, st.Message(), msg)
	var got string
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			require.Equal(t, ErrorDomain, info.GetDomain())
			got = info.GetReason()
		}
	}
	require.Equal(t, reason, got, "reason of %v", err)
}

// syncBuffer is a log sink the server's goroutines write to while a test
// reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
