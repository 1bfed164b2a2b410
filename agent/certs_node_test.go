package agent

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/forlock/fleet/agent/internal/certs"
	"github.com/forlock/fleet/agent/internal/checks"
	"github.com/forlock/fleet/agent/internal/tasks"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"

	"github.com/forlock/fleet/test/testenv"
)

const nginxImage = "forlock-test/nginx:latest"

// certNode is the test node's nginx, alone, with the agent's cert_rotate
// handler and certificate check wired to it as the agent wires them.
type certNode struct {
	name, addr string
	cfg        Config
	hc         *health
	logs       *lockedBuffer
}

// startCertNode runs the test node's nginx image (its self-signed P-256
// certificate in /etc/nginx/tls, 443 published on a loopback port) and an
// agent config that finds it. Skipped under -short or without the image.
func startCertNode(t *testing.T, mod func(*TLSConfig)) *certNode {
	t.Helper()
	if testing.Short() {
		t.Skip("needs Docker and the test node's nginx image")
	}
	testenv.RequireImage(t, nginxImage)
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	name := "fl-h5-certs-" + hex.EncodeToString(b) + "-nginx"
	out, err := exec.Command("docker", "run", "-d", "--name", name, "--label", "org.forlock.test=agent-certs",
		"-p", "127.0.0.1::443", nginxImage).CombinedOutput()
	require.NoError(t, err, "%s", out)
	t.Cleanup(func() { _ = exec.Command("docker", "rm", "-f", "-v", name).Run() })
	out, err = exec.Command("docker", "port", name, "443/tcp").Output()
	require.NoError(t, err)
	addr := strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0])
	_, _, err = net.SplitHostPort(addr)
	require.NoError(t, err, "docker port: %q", out)

	tc := TLSConfig{Addr: addr}
	if mod != nil {
		mod(&tc)
	}
	cfg, err := Config{ControlPlane: "cp:1", Name: "n", StateDir: t.TempDir(),
		Health: HealthConfig{Containers: []string{name}}, TLS: tc}.validate()
	require.NoError(t, err)
	n := &certNode{name: name, addr: addr, cfg: cfg, hc: cfg.newHealth(), logs: &lockedBuffer{}}
	t.Cleanup(n.hc.close)
	require.NotNil(t, n.hc.docker)
	require.Eventually(t, func() bool {
		_, err := certs.Served(t.Context(), addr, "")
		return err == nil
	}, 30*time.Second, 100*time.Millisecond, "nginx in %s never served TLS on %s", name, addr)
	return n
}

// handler is the cert_rotate handler as the agent builds it.
func (n *certNode) handler(t *testing.T) certs.Handler {
	t.Helper()
	a := &Agent{cfg: n.cfg, log: slog.New(slog.NewTextHandler(io.MultiWriter(n.logs, t.Output()), nil))}
	h, ok := a.certHandler(n.hc).(certs.Handler)
	require.True(t, ok)
	return h
}

// rotate runs the handler with pair as the assignment's certificate.
func (n *certNode) rotate(t *testing.T, h certs.Handler, pair *forlockv1.CertificatePair) (tasks.Result, error) {
	t.Helper()
	var phases []string
	res, err := h.Run(t.Context(), tasks.Assignment{Spec: &forlockv1.JobSpec{}, Certificate: pair}, func(p *forlockv1.Progress) {
		phases = append(phases, p.GetPhase())
	})
	if pair != nil && err == nil {
		require.Equal(t, []string{"installing the certificate into nginx"}, phases)
	}
	return res, err
}

// served is the serial nginx serves, in the control plane's form.
func (n *certNode) served(t *testing.T) string {
	t.Helper()
	c, err := certs.Served(t.Context(), n.addr, "localhost")
	require.NoError(t, err)
	return c.SerialNumber.Text(16)
}

// check runs the agent's certificate check once.
func (n *certNode) check(t *testing.T) (checks.Result, *forlockv1.HealthReport) {
	t.Helper()
	s := &checks.Suite{Certificate: n.cfg.certCheck()}
	rep := s.Run(t.Context())
	require.Len(t, rep.Results, 1)
	return rep.Results[0], rep.Proto()
}

func TestCertRotateOnNginx(t *testing.T) {
	n := startCertNode(t, nil)
	h := n.handler(t)
	first := n.served(t)

	// The image's own certificate: 90 days, OK.
	r, rep := n.check(t)
	require.Equal(t, checks.OK, r.Status, r.String())
	require.Equal(t, first, rep.GetCertificate().GetSerial())

	// A certificate with 20 days left: installed, served, WARN.
	pair, leaf := testPair(t, 20*24*time.Hour)
	pair.Source = forlockv1.CertificateSource_CERTIFICATE_SOURCE_VAULT_KV
	start := time.Now()
	res, err := n.rotate(t, h, pair)
	require.NoError(t, err)
	t.Logf("rotation took %s: %s; %v", time.Since(start), res.Message, res.Details)
	serial := leaf.SerialNumber.Text(16)
	require.Equal(t, serial, n.served(t), "a handshake after the task shows the new certificate")
	require.Equal(t, "nginx serves "+serial+" until "+leaf.NotAfter.UTC().Format(time.RFC3339), res.Message)
	require.Equal(t, "serial "+first+" -> "+serial, res.Details[0])
	require.False(t, res.RolledBack)
	c := res.Certificate
	require.Equal(t, serial, c.GetSerial())
	require.Equal(t, "CN=localhost", c.GetSubject())
	require.Equal(t, []string{"localhost", "127.0.0.1"}, c.GetNames())
	require.Equal(t, "ECDSA P-256", c.GetKeyType())
	require.Equal(t, leaf.NotAfter, c.GetNotAfter().AsTime())
	require.Equal(t, forlockv1.CertificateSource_CERTIFICATE_SOURCE_VAULT_KV, c.GetSource(), "the source is the pair's")
	require.WithinDuration(t, time.Now(), c.GetRotatedAt().AsTime(), time.Minute)

	r, rep = n.check(t)
	require.Equal(t, checks.Warn, r.Status, r.String())
	require.Contains(t, r.Summary, "19 days left: rotate it")
	require.Equal(t, serial, rep.GetCertificate().GetSerial())
	require.Equal(t, forlockv1.CertificateSource_CERTIFICATE_SOURCE_UNSPECIFIED, rep.GetCertificate().GetSource())

	// 5 days left: CRITICAL.
	pair5, leaf5 := testPair(t, 5*24*time.Hour)
	res, err = n.rotate(t, h, pair5)
	require.NoError(t, err)
	require.Equal(t, "serial "+serial+" -> "+leaf5.SerialNumber.Text(16), res.Details[0])
	require.Equal(t, forlockv1.CertificateSource_CERTIFICATE_SOURCE_UNSPECIFIED, res.Certificate.GetSource())
	r, rep = n.check(t)
	require.Equal(t, checks.Critical, r.Status, r.String())
	require.Contains(t, r.Summary, "4 days left: rotate it now")
	require.Equal(t, leaf5.SerialNumber.Text(16), rep.GetCertificate().GetSerial())

	// No pair: a clear failure, nothing changed.
	res, err = n.rotate(t, h, nil)
	require.ErrorContains(t, err, "the control plane sent no certificate")
	require.Nil(t, res.Certificate)
	require.False(t, res.RolledBack)

	// A key that does not match: refused, the old certificate still served.
	other, _ := testPair(t, 90*24*time.Hour)
	bad, _ := testPair(t, 90*24*time.Hour)
	bad.PrivateKeyPem = other.PrivateKeyPem
	_, err = n.rotate(t, h, bad)
	require.ErrorIs(t, err, certs.ErrInvalid)
	require.ErrorContains(t, err, "private key does not match the certificate")
	require.ErrorContains(t, err, "nothing was changed")
	require.Equal(t, leaf5.SerialNumber.Text(16), n.served(t))

	logs := n.logs.String()
	require.Contains(t, logs, "certificate installed and served")
	for _, p := range []*forlockv1.CertificatePair{pair, pair5, other, bad} {
		for _, line := range pemBody(t, p.GetPrivateKeyPem()) {
			require.NotContains(t, logs, line, "a private key was logged")
		}
	}
}

// tls_names: a certificate that does not cover them is refused and the
// old one stays.
func TestCertRotateRequiresConfiguredNames(t *testing.T) {
	n := startCertNode(t, func(tc *TLSConfig) { tc.Names = []string{"localhost", "node9.example.net"} })
	h := n.handler(t)
	first := n.served(t)
	pair, _ := testPair(t, 90*24*time.Hour)
	res, err := n.rotate(t, h, pair)
	require.ErrorIs(t, err, certs.ErrInvalid)
	require.ErrorContains(t, err, "does not cover node9.example.net; it covers localhost, 127.0.0.1")
	require.False(t, res.RolledBack)
	require.Equal(t, first, n.served(t))
}

// nginx does not read the configured paths, so it never serves the new
// certificate: the files written are removed again (there were none
// before), nginx reloaded, and the task ends ROLLED_BACK.
func TestCertRotateNotServedRollsBack(t *testing.T) {
	n := startCertNode(t, func(tc *TLSConfig) {
		tc.CertPath, tc.KeyPath = "/etc/nginx/tls/unused-cert.pem", "/etc/nginx/tls/unused-key.pem"
	})
	h := n.handler(t)
	h.Config.ConfirmTimeout = 2 * time.Second
	first := n.served(t)
	pair, _ := testPair(t, 90*24*time.Hour)
	res, err := n.rotate(t, h, pair)
	require.ErrorIs(t, err, certs.ErrNotServed)
	require.NotErrorIs(t, err, certs.ErrRollback)
	require.ErrorContains(t, err, "the old files are back and nginx reloaded")
	require.True(t, res.RolledBack)
	require.Nil(t, res.Certificate)
	require.Equal(t, first, n.served(t))
}

// testPair is a self-signed P-256 server certificate for localhost and
// 127.0.0.1, valid from an hour ago for left, as the control plane sends it.
func testPair(t *testing.T, left time.Duration) (*forlockv1.CertificatePair, *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(left).Truncate(time.Second),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	require.NoError(t, err)
	leaf, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	kder, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	return &forlockv1.CertificatePair{
		CertificatePem: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		PrivateKeyPem:  string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})),
	}, leaf
}

// pemBody is the base64 lines of a PEM block: what a leaked key shows,
// however the log quotes line ends.
func pemBody(t *testing.T, s string) []string {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(s), "\n")
	require.Greater(t, len(lines), 2)
	return lines[1 : len(lines)-1]
}

// lockedBuffer collects log output from several goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
