package vault

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/forlock/fleet/internal/pki"
)

func TestIssueCertificate(t *testing.T) {
	ctx := context.Background()
	cfg := fleetConfig(t)
	c := newClient(t, cfg)

	before := time.Now()
	cert, err := c.IssueCertificate(ctx, "web1.fleet.test", []string{"web1.fleet.test", "www.fleet.test", "127.0.0.1", " "}, 0)
	require.NoError(t, err)

	// ECDSA P-256, the key belongs to the certificate.
	key, err := pki.ParseKeyPEM(cert.KeyPEM)
	require.NoError(t, err)
	require.Equal(t, elliptic.P256(), key.Curve)
	pub, ok := cert.Leaf.PublicKey.(*ecdsa.PublicKey)
	require.True(t, ok)
	require.True(t, key.PublicKey.Equal(pub))

	// Names: DNS in alt_names, the IP in ip_sans.
	require.Equal(t, "web1.fleet.test", cert.Leaf.Subject.CommonName)
	require.ElementsMatch(t, []string{"web1.fleet.test", "www.fleet.test"}, cert.Leaf.DNSNames)
	require.Len(t, cert.Leaf.IPAddresses, 1)
	require.True(t, cert.Leaf.IPAddresses[0].Equal(net.ParseIP("127.0.0.1")))

	// 90 days by default, within the role's max_ttl of 2160h.
	require.WithinDuration(t, before.Add(DefaultCertTTL), cert.NotAfter, 2*time.Minute)
	require.Equal(t, pki.SerialHex(cert.Leaf), cert.Serial)

	// The chain verifies the leaf.
	roots := x509.NewCertPool()
	require.True(t, roots.AppendCertsFromPEM(cert.ChainPEM))
	_, err = cert.Leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: "www.fleet.test"})
	require.NoError(t, err)

	// Each call issues a new certificate.
	again, err := c.IssueCertificate(ctx, "web1.fleet.test", nil, 24*time.Hour)
	require.NoError(t, err)
	require.NotEqual(t, cert.Serial, again.Serial)
	require.WithinDuration(t, time.Now().Add(24*time.Hour), again.NotAfter, 2*time.Minute)
}

// A role with a shorter max_ttl caps the 90 days, and NotAfter tells.
func TestIssueCertificateCappedByRole(t *testing.T) {
	cfg := fleetConfig(t)
	cfg.PKIRole = roleShort
	c := newClient(t, cfg)
	cert, err := c.IssueCertificate(context.Background(), "web2.fleet.test", nil, 0)
	require.NoError(t, err)
	require.WithinDuration(t, time.Now().Add(720*time.Hour), cert.NotAfter, 2*time.Minute)
}

func TestIssueCertificateErrors(t *testing.T) {
	ctx := context.Background()
	t.Run("role issuing RSA keys", func(t *testing.T) {
		cfg := fleetConfig(t)
		cfg.PKIRole = roleRSA
		_, err := newClient(t, cfg).IssueCertificate(ctx, "web3.fleet.test", nil, 0)
		require.ErrorIs(t, err, ErrInvalid)
		require.ErrorContains(t, err, "the role issues rsa keys: set key_type=ec key_bits=256 on PKI role rsa")
	})
	t.Run("no role", func(t *testing.T) {
		cfg := fleetConfig(t)
		cfg.PKIRole = ""
		_, err := newClient(t, cfg).IssueCertificate(ctx, "web3.fleet.test", nil, 0)
		require.ErrorIs(t, err, ErrNotConfigured)
	})
	t.Run("role that does not exist", func(t *testing.T) {
		cfg := fleetConfig(t)
		cfg.PKIRole = "missing"
		_, err := newClient(t, cfg).IssueCertificate(ctx, "web3.fleet.test", nil, 0)
		require.ErrorContains(t, err, "update pki/issue/missing: vault at "+cfg.Address)
	})
}
