package checks

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

func TestEvaluateCertificate(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	cert := func(left time.Duration) *x509.Certificate {
		return &x509.Certificate{SerialNumber: big.NewInt(0x1fa0), Subject: pkix.Name{CommonName: "node1.example.net"},
			NotBefore: now.Add(-60 * 24 * time.Hour), NotAfter: now.Add(left)}
	}
	day := 24 * time.Hour
	refused := fmt.Errorf("tls handshake with 127.0.0.1:443: %w", syscall.ECONNREFUSED)
	tests := []struct {
		name     string
		cert     *x509.Certificate
		err      error
		explicit bool
		want     Status
		line     string
	}{
		{"90 days", cert(90 * day), nil, true, OK,
			"certificate OK serial 1fa0 (CN=node1.example.net) expires 2026-07-30T12:00:00Z, 90 days left"},
		{"just over 30 days", cert(30*day + time.Minute), nil, true, OK,
			"certificate OK serial 1fa0 (CN=node1.example.net) expires 2026-05-31T12:01:00Z, 30 days left"},
		{"30 days", cert(30 * day), nil, true, Warn,
			"certificate WARN serial 1fa0 (CN=node1.example.net) expires 2026-05-31T12:00:00Z, 30 days left: rotate it (forlockctl certs rotate)"},
		{"20 days", cert(20 * day), nil, true, Warn,
			"certificate WARN serial 1fa0 (CN=node1.example.net) expires 2026-05-21T12:00:00Z, 20 days left: rotate it (forlockctl certs rotate)"},
		{"14 days", cert(14 * day), nil, true, Warn,
			"certificate WARN serial 1fa0 (CN=node1.example.net) expires 2026-05-15T12:00:00Z, 14 days left: rotate it (forlockctl certs rotate)"},
		{"just under 14 days", cert(14*day - time.Minute), nil, true, Critical,
			"certificate CRITICAL serial 1fa0 (CN=node1.example.net) expires 2026-05-15T11:59:00Z, 13 days left: rotate it now (forlockctl certs rotate)"},
		{"5 days", cert(5 * day), nil, false, Critical,
			"certificate CRITICAL serial 1fa0 (CN=node1.example.net) expires 2026-05-06T12:00:00Z, 5 days left: rotate it now (forlockctl certs rotate)"},
		{"hours", cert(5 * time.Hour), nil, true, Critical,
			"certificate CRITICAL serial 1fa0 (CN=node1.example.net) expires 2026-05-01T17:00:00Z, 5h left: rotate it now (forlockctl certs rotate)"},
		{"expired", cert(-2 * day), nil, true, Critical,
			"certificate CRITICAL serial 1fa0 (CN=node1.example.net) expired at 2026-04-29T12:00:00Z (2 days ago): rotate it now (forlockctl certs rotate)"},
		{"not yet valid", func() *x509.Certificate { c := cert(90 * day); c.NotBefore = now.Add(day); return c }(), nil, true, Critical,
			"certificate CRITICAL serial 1fa0 (CN=node1.example.net) is not valid before 2026-05-02T12:00:00Z: check this host's clock, or rotate it"},
		{"refused at the default", nil, refused, false, Unknown,
			"certificate UNKNOWN nothing listens at 127.0.0.1:443 (the default): set tls_addr to where the node's nginx serves 443"},
		{"refused where configured", nil, refused, true, Critical,
			"certificate CRITICAL tls handshake with 127.0.0.1:443: connection refused: is nginx up and serving TLS there? (tls_addr)"},
		{"handshake failed at the default", nil, errors.New("tls handshake with 127.0.0.1:443: tls: first record does not look like a TLS handshake"), false, Critical,
			"certificate CRITICAL tls handshake with 127.0.0.1:443: tls: first record does not look like a TLS handshake: is nginx up and serving TLS there? (tls_addr)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := EvaluateCertificate("127.0.0.1:443", tt.explicit, tt.cert, tt.err, now)
			require.Equal(t, tt.want, r.Status)
			require.Equal(t, tt.line, r.String())
		})
	}
}

// A real TLS server serving certificates with 20 and 5 days left: the
// check says WARN and CRITICAL, and the suite's report carries the served
// certificate.
func TestCertificateCheckHandshake(t *testing.T) {
	for _, tt := range []struct {
		left time.Duration
		want forlockv1.CheckStatus
		line string
	}{
		{20 * 24 * time.Hour, forlockv1.CheckStatus_CHECK_STATUS_WARN, "19 days left: rotate it (forlockctl certs rotate)"},
		{5 * 24 * time.Hour, forlockv1.CheckStatus_CHECK_STATUS_CRITICAL, "4 days left: rotate it now"},
		{60 * 24 * time.Hour, forlockv1.CheckStatus_CHECK_STATUS_OK, "59 days left"},
	} {
		t.Run(tt.left.String(), func(t *testing.T) {
			leaf, kp := selfSigned(t, tt.left)
			addr := serveTLS(t, kp)
			s := &Suite{Certificate: &Certificate{Addr: addr, ServerName: "node1.example.net", Explicit: true}}
			rep := s.Run(t.Context())
			require.True(t, leaf.Equal(rep.Certificate), "the report holds the served certificate")

			h := rep.Proto()
			require.Len(t, h.GetChecks(), 1)
			c := h.GetChecks()[0]
			require.Equal(t, "certificate", c.GetName())
			require.Equal(t, tt.want, c.GetStatus(), c.GetMessage())
			require.Contains(t, c.GetMessage(), tt.line)
			require.Contains(t, c.GetMessage(), "serial "+leaf.SerialNumber.Text(16)+" (CN=node1.example.net)")

			info := h.GetCertificate()
			require.Equal(t, leaf.SerialNumber.Text(16), info.GetSerial())
			require.Equal(t, "CN=node1.example.net", info.GetSubject())
			require.Equal(t, "CN=node1.example.net", info.GetIssuer())
			require.Equal(t, []string{"node1.example.net", "127.0.0.1"}, info.GetNames())
			require.Equal(t, "ECDSA P-256", info.GetKeyType())
			require.Equal(t, leaf.NotAfter, info.GetNotAfter().AsTime())
			require.Equal(t, leaf.NotBefore, info.GetNotBefore().AsTime())
			require.Equal(t, forlockv1.CertificateSource_CERTIFICATE_SOURCE_UNSPECIFIED, info.GetSource(), "the control plane fills the source")
			require.Nil(t, info.GetRotatedAt())
		})
	}
}

func TestCertificateCheckNoServer(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())

	for _, explicit := range []bool{false, true} {
		rep := (&Suite{Certificate: &Certificate{Addr: addr, Explicit: explicit}}).Run(t.Context())
		require.Nil(t, rep.Certificate)
		require.Nil(t, rep.Proto().GetCertificate(), "no certificate without a handshake")
		want := map[bool]Status{false: Unknown, true: Critical}[explicit]
		require.Equal(t, want, rep.Results[0].Status, rep.Results[0].String())
	}

	// Something that is not TLS: CRITICAL whether configured or not.
	plain, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := plain.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write([]byte("HTTP/1.1 400 Bad Request\r\n\r\n"))
			_ = c.Close()
		}
	})
	t.Cleanup(func() {
		_ = plain.Close()
		wg.Wait()
	})
	rep := (&Suite{Certificate: &Certificate{Addr: plain.Addr().String()}}).Run(t.Context())
	require.Equal(t, Critical, rep.Results[0].Status, rep.Results[0].String())
	require.Contains(t, rep.Results[0].Summary, "tls handshake with "+plain.Addr().String())

	// No certificate check configured: absent from the report.
	rep = (&Suite{}).Run(t.Context())
	require.Empty(t, rep.Results)
	require.Nil(t, rep.Proto().GetCertificate())
}

// The report cuts a certificate with very many names to the bounds.
func TestReportCertificateBounds(t *testing.T) {
	c := &x509.Certificate{SerialNumber: big.NewInt(1), NotAfter: time.Now(), NotBefore: time.Now()}
	for i := range 200 {
		c.DNSNames = append(c.DNSNames, fmt.Sprintf("n%d.example.net", i))
	}
	h := Report{Certificate: c}.Proto()
	require.Len(t, h.GetCertificate().GetNames(), maxCertNames)
	require.Equal(t, "n0.example.net", h.GetCertificate().GetNames()[0])
}

// selfSigned makes a P-256 certificate for node1.example.net and
// 127.0.0.1, valid from an hour ago for left.
func selfSigned(t *testing.T, left time.Duration) (*x509.Certificate, tls.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "node1.example.net"},
		DNSNames:     []string{"node1.example.net"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(left),
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	require.NoError(t, err)
	leaf, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	return leaf, tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

// serveTLS runs a TLS server presenting kp until the test ends.
func serveTLS(t *testing.T, kp tls.Certificate) string {
	t.Helper()
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{kp}, MinVersion: tls.VersionTLS12})
	require.NoError(t, err)
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_ = c.(*tls.Conn).HandshakeContext(ctx)
			cancel()
			_ = c.Close()
		}
	})
	t.Cleanup(func() {
		_ = l.Close()
		wg.Wait()
	})
	return l.Addr().String()
}
