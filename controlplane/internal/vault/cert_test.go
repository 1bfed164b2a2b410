package vault

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/forlock/fleet/internal/pki"
)

// localPair issues a P-256 certificate for names from a throwaway CA and
// returns the leaf PEM, key PEM and CA PEM.
func localPair(t *testing.T, now time.Time, ttl time.Duration, names ...string) (certPEM, keyPEM, caPEM []byte) {
	t.Helper()
	ca, err := pki.NewCA(now, "test ca")
	require.NoError(t, err)
	key, err := pki.GenerateKey()
	require.NoError(t, err)
	leaf, err := ca.IssueServer(now, names, key, ttl)
	require.NoError(t, err)
	keyPEM, err = pki.EncodeKeyPEM(key)
	require.NoError(t, err)
	return pki.EncodeCertPEM(leaf.Raw), keyPEM, ca.CertPEM()
}

func TestNewCertificate(t *testing.T) {
	now := time.Now()
	certPEM, keyPEM, caPEM := localPair(t, now, 24*time.Hour, "web1.example")

	t.Run("pair with chain", func(t *testing.T) {
		c, err := newCertificate("src", certPEM, keyPEM, caPEM, now)
		require.NoError(t, err)
		require.Equal(t, pki.SerialHex(c.Leaf), c.Serial)
		require.Equal(t, c.Leaf.NotAfter, c.NotAfter)
		require.Equal(t, certPEM, c.CertPEM)
		require.Equal(t, caPEM, c.ChainPEM)
	})
	t.Run("fullchain in the certificate field, chain given twice", func(t *testing.T) {
		full := append(append([]byte{}, certPEM...), caPEM...)
		c, err := newCertificate("src", full, keyPEM, caPEM, now)
		require.NoError(t, err)
		require.Equal(t, certPEM, c.CertPEM)
		require.Equal(t, caPEM, c.ChainPEM, "the CA once")
	})

	_, otherKey, _ := localPair(t, now, time.Hour, "other.example")
	tests := []struct {
		name             string
		cert, key, chain []byte
		at               time.Time
		want             string
	}{
		{"key of another certificate", certPEM, otherKey, nil, now, "src: the private key does not belong to the certificate (serial "},
		{"P-384 key", certPEM, p384Key(t), nil, now, "src: private key is not ECDSA P-256: the fleet's nginx certificates need an ECDSA P-256 key"},
		{"expired", certPEM, keyPEM, nil, now.Add(48 * time.Hour), ") expired on "},
		{"not a certificate", []byte("junk"), keyPEM, nil, now, "src: certificate: no PEM certificate found"},
		{"key where the chain goes", certPEM, keyPEM, keyPEM, now, `src: chain: unexpected PEM block "PRIVATE KEY"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := newCertificate("src", tt.cert, tt.key, tt.chain, tt.at)
			require.ErrorIs(t, err, ErrInvalid)
			require.ErrorContains(t, err, tt.want)
			require.NotContains(t, err.Error(), "PRIVATE KEY-----", "no key material in errors")
		})
	}
}

func p384Key(t *testing.T) []byte {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	require.NoError(t, err)
	der, err := x509.MarshalPKCS8PrivateKey(k)
	require.NoError(t, err)
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// Printing or logging a Certificate never shows its key.
func TestCertificateHidesKey(t *testing.T) {
	now := time.Now()
	certPEM, keyPEM, _ := localPair(t, now, time.Hour, "web1.example")
	c, err := newCertificate("src", certPEM, keyPEM, nil, now)
	require.NoError(t, err)
	var logged strings.Builder
	slog.New(slog.NewTextHandler(&logged, nil)).Info("issued", "cert", c)
	for _, s := range []string{fmt.Sprint(c), fmt.Sprintf("%v %+v %#v %s", c, c, c, c), logged.String()} {
		require.NotContains(t, s, "PRIVATE KEY")
		require.Contains(t, s, c.Serial)
	}
}
