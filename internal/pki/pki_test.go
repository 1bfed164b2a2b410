package pki

import (
	"crypto/x509"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestIssueNodeRoundTrip(t *testing.T) {
	now := time.Now()
	ca, err := NewCA(now, "test CA")
	require.NoError(t, err)
	key, err := GenerateKey()
	require.NoError(t, err)
	der, err := CreateCSR(key, "ignored")
	require.NoError(t, err)
	csr, err := ParseCSR(der)
	require.NoError(t, err)
	want := NodeID{ID: "0123456789abcdef0123456789abcdef", Epoch: 7}
	cert, err := ca.IssueNode(now, csr, want, 6*time.Second)
	require.NoError(t, err)

	got, err := NodeIdentity(cert)
	require.NoError(t, err)
	require.Equal(t, want, got)
	require.Equal(t, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, cert.ExtKeyUsage)
	// Short certificates are back-dated by a tenth of their life, not 5 min.
	// (X.509 times have one-second resolution.)
	life := cert.NotAfter.Sub(cert.NotBefore)
	require.GreaterOrEqual(t, life, 5*time.Second)
	require.LessOrEqual(t, life, 8*time.Second)
	_, err = cert.Verify(x509.VerifyOptions{Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, CurrentTime: now})
	require.NoError(t, err)

	keyPEM, err := ca.KeyPEM()
	require.NoError(t, err)
	again, err := LoadCA(ca.CertPEM(), keyPEM)
	require.NoError(t, err)
	require.True(t, again.Certificate().Equal(ca.Certificate()))

	other, err := NewCA(now, "other")
	require.NoError(t, err)
	otherKey, err := other.KeyPEM()
	require.NoError(t, err)
	_, err = LoadCA(ca.CertPEM(), otherKey)
	require.ErrorContains(t, err, "does not match")
}

func TestNodeIdentityRejects(t *testing.T) {
	ca, err := NewCA(time.Now(), "test CA")
	require.NoError(t, err)
	key, err := GenerateKey()
	require.NoError(t, err)
	srv, err := ca.IssueServer(time.Now(), []string{"localhost"}, key, time.Hour)
	require.NoError(t, err)
	_, err = NodeIdentity(srv)
	require.ErrorIs(t, err, ErrNoNodeIdentity)
}

func TestValidateNodeName(t *testing.T) {
	for _, ok := range []string{"a", "web-1", "db.eu-west.example", "0"} {
		require.NoError(t, ValidateNodeName(ok), ok)
	}
	for _, bad := range []string{"", "-a", "a-", "A", "a_b", "a b", string(make([]byte, 64))} {
		require.Error(t, ValidateNodeName(bad), bad)
	}
}

func FuzzParseCSR(f *testing.F) {
	key, _ := GenerateKey()
	good, _ := CreateCSR(key, "seed")
	f.Add(good)
	f.Add([]byte{})
	f.Add([]byte{0x30, 0x82, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, der []byte) {
		csr, err := ParseCSR(der)
		if err != nil {
			return
		}
		// Whatever is accepted must be a verified P-256 request we can sign.
		if csr.CheckSignature() != nil || len(der) > MaxCSRSize {
			t.Fatalf("accepted an invalid csr")
		}
		ca, err := NewCA(time.Now(), "fuzz")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ca.IssueNode(time.Now(), csr, NodeID{ID: "0123456789abcdef0123456789abcdef", Epoch: 1}, time.Hour); err != nil {
			t.Fatalf("accepted csr cannot be signed: %v", err)
		}
	})
}

func FuzzParseCertsPEM(f *testing.F) {
	ca, _ := NewCA(time.Now(), "seed")
	f.Add(ca.CertPEM())
	f.Add([]byte("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		certs, err := ParseCertsPEM(data)
		if err == nil && len(certs) == 0 {
			t.Fatal("no error and no certificates")
		}
	})
}

// TestIssuedAt: the issue time is recovered from a certificate's validity
// to within the second NotBefore loses, for back-dating by 5 minutes (long
// lives) and by a tenth of the life (short ones).
func TestIssuedAt(t *testing.T) {
	ca, err := NewCA(time.Now(), "test CA")
	require.NoError(t, err)
	key, err := GenerateKey()
	require.NoError(t, err)
	der, err := CreateCSR(key, "ignored")
	require.NoError(t, err)
	csr, err := ParseCSR(der)
	require.NoError(t, err)
	for _, ttl := range []time.Duration{24 * time.Hour, time.Hour, 10 * time.Minute, time.Minute} {
		now := time.Date(2026, 12, 3, 18, 0, 0, 700e6, time.UTC)
		cert, err := ca.IssueNode(now, csr, NodeID{ID: "0123456789abcdef0123456789abcdef", Epoch: 1}, ttl)
		require.NoError(t, err)
		got := IssuedAt(cert)
		require.False(t, got.After(now), "ttl %s: %s after %s", ttl, got, now)
		require.Less(t, now.Sub(got), 2*time.Second, "ttl %s: %s", ttl, got)
	}
}
