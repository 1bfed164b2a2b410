package vault

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// putKV writes data at path in the dev server's KV v2 engine "secret".
func putKV(t *testing.T, path string, data map[string]any) {
	t.Helper()
	_, err := admin(t).KVv2("secret").Put(context.Background(), path, data)
	require.NoError(t, err)
}

func TestReadCertificate(t *testing.T) {
	ctx := context.Background()
	c := newClient(t, fleetConfig(t))
	now := time.Now()
	certPEM, keyPEM, caPEM := localPair(t, now, 30*24*time.Hour, "web1.fleet.test")
	_, otherKey, _ := localPair(t, now, time.Hour, "other.fleet.test")

	t.Run("certbot fullchain", func(t *testing.T) {
		path := unique("nginx/web")
		putKV(t, path, map[string]any{KVFieldCertificate: string(certPEM) + string(caPEM), KVFieldPrivateKey: string(keyPEM)})
		cert, err := c.ReadCertificate(ctx, path)
		require.NoError(t, err)
		require.Equal(t, certPEM, cert.CertPEM)
		require.Equal(t, keyPEM, cert.KeyPEM)
		require.Equal(t, caPEM, cert.ChainPEM)
		require.Equal(t, []string{"web1.fleet.test"}, cert.Leaf.DNSNames)
	})
	t.Run("chain as a list", func(t *testing.T) {
		path := unique("nginx/web")
		putKV(t, path, map[string]any{KVFieldCertificate: string(certPEM), KVFieldPrivateKey: string(keyPEM), KVFieldCAChain: []string{string(caPEM)}})
		cert, err := c.ReadCertificate(ctx, path)
		require.NoError(t, err)
		require.Equal(t, caPEM, cert.ChainPEM)
	})
	t.Run("latest version", func(t *testing.T) {
		path := unique("nginx/web")
		putKV(t, path, map[string]any{KVFieldCertificate: string(certPEM), KVFieldPrivateKey: string(keyPEM)})
		newCert, newKey, _ := localPair(t, now, time.Hour, "web1.fleet.test")
		putKV(t, path, map[string]any{KVFieldCertificate: string(newCert), KVFieldPrivateKey: string(newKey)})
		cert, err := c.ReadCertificate(ctx, path)
		require.NoError(t, err)
		require.Equal(t, newCert, cert.CertPEM)
	})

	tests := []struct {
		name    string
		data    map[string]any // nil: nothing written
		kind    error
		wantMsg string
	}{
		{"missing path", nil, ErrNotFound, "has no secret at %s in the KV v2 engine secret: put the certificate there (fields certificate, private_key)"},
		{"missing key field", map[string]any{KVFieldCertificate: string(certPEM)}, ErrNotFound, `vault kv secret/%s (version 1): field "private_key" is missing or empty: put the PEM there`},
		{"empty certificate field", map[string]any{KVFieldCertificate: "", KVFieldPrivateKey: string(keyPEM)}, ErrNotFound, `field "certificate" is missing or empty`},
		{"mismatched pair", map[string]any{KVFieldCertificate: string(certPEM), KVFieldPrivateKey: string(otherKey)}, ErrInvalid, "vault kv secret/%s (version 1): the private key does not belong to the certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := unique("nginx/web")
			if tt.data != nil {
				putKV(t, path, tt.data)
			}
			_, err := c.ReadCertificate(ctx, path)
			require.ErrorIs(t, err, tt.kind)
			require.ErrorContains(t, err, sprintf(tt.wantMsg, path))
			require.NotContains(t, err.Error(), "PRIVATE KEY")
		})
	}

	t.Run("deleted", func(t *testing.T) {
		path := unique("nginx/web")
		putKV(t, path, map[string]any{KVFieldCertificate: string(certPEM), KVFieldPrivateKey: string(keyPEM)})
		require.NoError(t, admin(t).KVv2("secret").Delete(ctx, path))
		_, err := c.ReadCertificate(ctx, path)
		require.ErrorIs(t, err, ErrNotFound)
	})
	t.Run("path escaping the mount", func(t *testing.T) {
		_, err := c.ReadCertificate(ctx, "nginx/../../sys/seal")
		require.ErrorContains(t, err, "has an empty, '.' or '..' segment")
	})
}
