package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/forlock/fleet/internal/pki"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// Issue 12, item 1: a join token cannot take over a registered node's name;
// a --for-node token replaces its host on purpose; an agent whose
// certificate expired while offline gets back in by proving its key.
func TestIdentityContinuity(t *testing.T) {
	if testing.Short() {
		t.Skip("real processes")
	}
	c := startCluster(t)
	t1 := c.tokenFile()
	t2 := c.tokenFile("--label", "role=x", "--max-uses", "2")
	web1Dir := filepath.Join(t.TempDir(), "web1")
	web1 := c.startAgent("web1", web1Dir, "--join-token-file", t1)
	first := c.waitOnline("web1")
	require.Empty(t, first.Labels)

	t.Run("a token cannot take over a registered name", func(t *testing.T) {
		imp := c.startAgent("web1", filepath.Join(t.TempDir(), "impostor"), "--join-token-file", t2)
		require.Eventually(t, func() bool { return strings.Contains(imp.out.String(), "code=AlreadyExists") },
			20*time.Second, 50*time.Millisecond, "the impostor must be refused with AlreadyExists")
		require.Contains(t, imp.out.String(), "forlockctl tokens create --for-node web1")
		imp.kill(syscall.SIGKILL)

		n := c.waitOnline("web1") // web1's certificate still works: still connected
		require.Equal(t, first.ID, n.ID)
		require.Empty(t, n.Labels, "the impostor's token labels must not reach web1")
		require.Equal(t, 1, n.Enrollments)
		require.Zero(t, c.tokenUses(t2), "a refused enrollment uses nothing")
		log := c.cp.out.String()
		require.Contains(t, log, `msg="enrollment refused"`)
		require.Regexp(t, `msg="enrollment refused" client=127\.0\.0\.1:\d+ token_id=[0-9a-f]{12} name=web1 .*rule=refused-name-taken`, log)
		secret := readSecret(t, t2)
		require.NotContains(t, log, secret, "never the secret")
		require.Contains(t, log, "token_id="+tokenID(t, t2), "the token ID is there: the check above looked at the right log")
	})

	t.Run("a --for-node token replaces the host, the old identity is refused", func(t *testing.T) {
		forWeb1 := c.tokenFile("--for-node", "web1")
		var list struct {
			Tokens []struct {
				ForNode string `json:"forNode"`
				MaxUses int    `json:"maxUses"`
			} `json:"tokens"`
		}
		require.NoError(t, json.Unmarshal([]byte(c.ctl("tokens", "list", "-o", "json")), &list))
		var forNode []string
		for _, tok := range list.Tokens {
			if tok.ForNode != "" {
				forNode = append(forNode, tok.ForNode)
				require.Equal(t, 1, tok.MaxUses)
			}
		}
		require.Equal(t, []string{"web1"}, forNode)
		require.Contains(t, c.ctl("tokens", "list"), "web1")

		repl := c.startAgent("web1", filepath.Join(t.TempDir(), "replacement"), "--join-token-file", forWeb1)
		require.Eventually(t, func() bool {
			n, _ := c.node("web1")
			return n.Enrollments == 2 && n.Connected
		}, 30*time.Second, 100*time.Millisecond)
		n, _ := c.node("web1")
		require.Equal(t, first.ID, n.ID, "the replacement keeps the node ID")
		require.Empty(t, n.Labels)
		require.Contains(t, c.cp.out.String(), "node enrolled with a new key: its old identity and every certificate of it are retired")

		// The old host is refused: its certificate is retired and its own
		// token (used up, but it once enrolled this key) no longer fits.
		require.Eventually(t, func() bool {
			out := web1.out.String()
			return strings.Contains(out, "retired") && strings.Contains(out, "code=AlreadyExists")
		}, 30*time.Second, 100*time.Millisecond, "the old agent must be refused")
		web1.kill(syscall.SIGKILL)
		n = c.waitOnline("web1")
		require.Equal(t, 2, n.Enrollments, "the old agent never got back in")
		repl.kill(syscall.SIGTERM)
	})

	t.Run("an agent whose certificate expired while offline keeps its node ID", func(t *testing.T) {
		ec := startCluster(t, "--agent-cert-ttl", "3s")
		dir := filepath.Join(t.TempDir(), "db1")
		a := ec.startAgent("db1", dir, "--join-token-file", ec.tokenFile())
		before := ec.waitOnline("db1")
		a.kill(syscall.SIGKILL)
		key, err := os.ReadFile(filepath.Join(dir, "node.key"))
		require.NoError(t, err)
		leaf := readLeaf(t, dir)
		time.Sleep(time.Until(leaf.NotAfter.Add(500 * time.Millisecond)))
		require.True(t, time.Now().After(leaf.NotAfter), "the certificate has expired")

		a = ec.startAgent("db1", dir, "--join-token-file", ec.tokenFile("--label", "role=other"))
		require.Eventually(t, func() bool {
			n, _ := ec.node("db1")
			return n.Enrollments == 2 && n.Connected
		}, 30*time.Second, 100*time.Millisecond)
		n, _ := ec.node("db1")
		require.Equal(t, before.ID, n.ID)
		require.Empty(t, n.Labels, "labels come from the first enrollment only")
		after, err := os.ReadFile(filepath.Join(dir, "node.key"))
		require.NoError(t, err)
		require.Equal(t, key, after, "the agent proved the key it had")
		require.Contains(t, ec.cp.out.String(), "rule=same-key")
		a.kill(syscall.SIGTERM)
	})
}

// Issue 12, item 2: after a renewal from C1 to C2, C1 works only for the
// grace; then a Connect from it is refused, and a renewal from it is refused
// and quarantines the node until a --for-node token brings it back.
func TestSupersededCertificate(t *testing.T) {
	if testing.Short() {
		t.Skip("real processes")
	}
	const grace = time.Second
	c := startCluster(t, "--agent-cert-grace", grace.String())
	dir := filepath.Join(t.TempDir(), "x1")
	a := c.startAgent("x1", dir, "--join-token-file", c.tokenFile())
	node := c.waitOnline("x1")
	a.kill(syscall.SIGKILL) // the test holds the agent's key and certificate now

	c1 := c.agentCert(t, dir)
	c2, err := c.renew(c1)
	require.NoError(t, err)
	renewedAt := time.Now()
	require.NotEqual(t, pki.SerialHex(c1.Leaf), pki.SerialHex(c2.Leaf))
	require.NoError(t, c.connect(c1), "C1 still connects within the grace")

	time.Sleep(time.Until(renewedAt.Add(grace + 300*time.Millisecond)))
	err = c.connect(c1)
	requireStatus(t, err, codes.Unauthenticated, "superseded")
	n, _ := c.node("x1")
	require.False(t, n.Quarantined, "a Connect is refused, not quarantined")
	require.NoError(t, c.connect(c2), "the newest certificate works")

	_, err = c.renew(c1)
	requireStatus(t, err, codes.Unauthenticated, "superseded")
	n, _ = c.node("x1")
	require.True(t, n.Quarantined)
	require.Contains(t, c.ctl("nodes", "get", "x1"), "QUARANTINED")
	requireStatus(t, c.connect(c2), codes.Unauthenticated, "quarantined")
	log := c.cp.out.String()
	require.Regexp(t, `POSSIBLE STOLEN CERTIFICATE.*node_id=`+node.ID+` epoch=1 serial=`+pki.SerialHex(c1.Leaf)+` client=127\.0\.0\.1:\d+`, log)
	require.Contains(t, log, "NODE QUARANTINED")

	// Its own key does not lift the quarantine; a --for-node token does.
	a = c.startAgent("x1", dir, "--join-token-file", c.tokenFile())
	require.Eventually(t, func() bool { return strings.Contains(a.out.String(), "quarantined") }, 20*time.Second, 50*time.Millisecond)
	a.kill(syscall.SIGKILL)
	a = c.startAgent("x1", dir, "--join-token-file", c.tokenFile("--for-node", "x1"))
	n = c.waitOnline("x1")
	require.Equal(t, node.ID, n.ID)
	require.False(t, n.Quarantined)
	a.kill(syscall.SIGTERM)
}

func requireStatus(t *testing.T, err error, code codes.Code, msg string) {
	t.Helper()
	require.Error(t, err)
	st := status.Convert(err)
	require.Equal(t, code, st.Code(), st.Message())
	require.Contains(t, st.Message(), msg)
}

func readSecret(t *testing.T, file string) string {
	t.Helper()
	b, err := os.ReadFile(file)
	require.NoError(t, err)
	return strings.TrimSpace(string(b))
}

// tokenID is the log-safe ID of the token in file: the first 12 hex
// digits of the secret's SHA-256.
func tokenID(t *testing.T, file string) string {
	t.Helper()
	sum := sha256.Sum256([]byte(readSecret(t, file)))
	return hex.EncodeToString(sum[:6])
}

func (c *cluster) tokenUses(file string) int {
	c.t.Helper()
	var list struct {
		Tokens []struct {
			ID   string `json:"id"`
			Uses int    `json:"uses"`
		} `json:"tokens"`
	}
	require.NoError(c.t, json.Unmarshal([]byte(c.ctl("tokens", "list", "--all", "-o", "json")), &list))
	id := tokenID(c.t, file)
	for _, tok := range list.Tokens {
		if tok.ID == id {
			return tok.Uses
		}
	}
	c.t.Fatalf("token of %s not listed", file)
	return 0
}

func readLeaf(t *testing.T, dir string) *x509.Certificate {
	t.Helper()
	pemData, err := os.ReadFile(filepath.Join(dir, "node.crt"))
	require.NoError(t, err)
	certs, err := pki.ParseCertsPEM(pemData)
	require.NoError(t, err)
	return certs[0]
}

// agentCert is the agent's key and certificate from its state dir.
func (c *cluster) agentCert(t *testing.T, dir string) tls.Certificate {
	t.Helper()
	keyPEM, err := os.ReadFile(filepath.Join(dir, "node.key"))
	require.NoError(t, err)
	key, err := pki.ParseKeyPEM(keyPEM)
	require.NoError(t, err)
	leaf := readLeaf(t, dir)
	return tls.Certificate{Certificate: [][]byte{leaf.Raw}, PrivateKey: key, Leaf: leaf}
}

// dialAs opens a TLS connection to the control plane presenting cert.
func (c *cluster) dialAs(cert tls.Certificate) *grpc.ClientConn {
	c.t.Helper()
	caPEM, err := os.ReadFile(filepath.Join(c.dataDir, "ca.crt"))
	require.NoError(c.t, err)
	pool := x509.NewCertPool()
	require.True(c.t, pool.AppendCertsFromPEM(caPEM))
	cfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13, ServerName: "127.0.0.1",
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }}
	conn, err := grpc.NewClient(c.addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	require.NoError(c.t, err)
	c.t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// renew calls RenewCertificate with cert, for the same key.
func (c *cluster) renew(cert tls.Certificate) (tls.Certificate, error) {
	c.t.Helper()
	key, ok := cert.PrivateKey.(*ecdsa.PrivateKey)
	require.True(c.t, ok)
	csr, err := pki.CreateCSR(key, "x")
	require.NoError(c.t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := forlockv1.NewAgentServiceClient(c.dialAs(cert)).RenewCertificate(ctx, &forlockv1.RenewCertificateRequest{Csr: csr})
	if err != nil {
		return tls.Certificate{}, err
	}
	certs, err := pki.ParseCertsPEM(resp.GetCertificateChain())
	require.NoError(c.t, err)
	return tls.Certificate{Certificate: [][]byte{certs[0].Raw}, PrivateKey: key, Leaf: certs[0]}, nil
}

// connect opens a control stream with cert and returns nil once the
// control plane said hello.
func (c *cluster) connect(cert tls.Certificate) error {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := forlockv1.NewAgentServiceClient(c.dialAs(cert)).Connect(ctx)
	if err != nil {
		return err
	}
	_ = s.Send(&forlockv1.ConnectRequest{Msg: &forlockv1.ConnectRequest_Hello{Hello: &forlockv1.AgentHello{AgentVersion: "test"}}})
	m, err := s.Recv()
	if err != nil {
		return err
	}
	require.NotNil(c.t, m.GetHello())
	return nil
}
