package certs

import (
	"context"
	"crypto/x509"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/forlock/fleet/agent/internal/dockerrt"
	"github.com/stretchr/testify/require"
)

func TestInstall(t *testing.T) {
	n := startNginx(t)
	first := n.served(t)
	firstCert, firstKey := n.read(t, DefaultCertPath), n.read(t, DefaultKeyPath)
	require.True(t, firstCert != nil && firstKey != nil, "the entrypoint made no pair")

	root := newCA(t, "Test Root", nil)
	inter := newCA(t, "Test Intermediate", root)
	pair, leaf := inter.leaf(t, leafOpts{})
	pair.ChainPEM = inter.pem

	start := time.Now()
	res, err := Install(t.Context(), n.config(t), pair)
	require.NoError(t, err)
	t.Logf("install with chain: %s, confirmed %s after the reload", time.Since(start), res.ConfirmedAfter)

	require.True(t, n.served(t).Equal(leaf), "a handshake after Install must show the new leaf")
	require.Equal(t, Describe(leaf), res.New)
	require.Equal(t, SerialHex(first.SerialNumber), res.Old.Serial)
	require.Equal(t, first.NotAfter, res.Old.NotAfter)
	require.Equal(t, []string{"localhost", "node.forlock.test", "127.0.0.1"}, res.New.Names)
	require.Equal(t, "CN=localhost", res.New.Subject)

	// Canonical PEM, leaf then chain; root-owned; key 0600; no temporary
	// files left behind.
	require.Equal(t, string(pair.CertPEM)+string(inter.pem), string(n.read(t, DefaultCertPath)))
	require.Equal(t, string(pair.KeyPEM), string(n.read(t, DefaultKeyPath)))
	require.Equal(t, "0:0:644\n0:0:600\n", n.sh(t, "stat -c %u:%g:%a /etc/nginx/tls/cert.pem /etc/nginx/tls/key.pem"))
	require.Equal(t, "cert.pem\nkey.pem\n", n.sh(t, "ls -A /etc/nginx/tls"))

	// A second rotation, without chain, replaces the first.
	pair2, leaf2 := root.leaf(t, leafOpts{})
	res, err = Install(t.Context(), n.config(t), pair2)
	require.NoError(t, err)
	require.True(t, n.served(t).Equal(leaf2))
	require.Equal(t, Describe(leaf), res.Old)
	t.Logf("install without chain: confirmed %s after the reload", res.ConfirmedAfter)

	requireNoKey(t, n.logs.String(), pair.KeyPEM)
	requireNoKey(t, n.logs.String(), pair2.KeyPEM)
	requireNoKey(t, n.logs.String(), firstKey)
}

func TestInstallRefuses(t *testing.T) {
	n := startNginx(t)
	old := n.served(t)
	oldCert, oldKey := n.read(t, DefaultCertPath), n.read(t, DefaultKeyPath)

	ca := newCA(t, "Test Root", nil)
	good, _ := ca.leaf(t, leafOpts{})
	other, _ := ca.leaf(t, leafOpts{})
	rsaPair, _ := ca.leaf(t, leafOpts{key: rsaKey(t)})
	expired, _ := ca.leaf(t, leafOpts{edit: func(c *x509.Certificate) {
		c.NotBefore, c.NotAfter = time.Now().Add(-48*time.Hour), time.Now().Add(-time.Hour)
	}})
	mismatched := good
	mismatched.KeyPEM = other.KeyPEM

	for _, tt := range []struct {
		name string
		pair Pair
		err  string
	}{
		{"mismatched key and certificate", mismatched, "private key does not match the certificate"},
		{"RSA", rsaPair, "RSA 2048-bit: ECDSA P-256 is required"},
		{"expired", expired, "expired at"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Install(t.Context(), n.config(t), tt.pair)
			require.ErrorIs(t, err, ErrInvalid)
			require.ErrorContains(t, err, tt.err)
			requireNoKey(t, err.Error(), tt.pair.KeyPEM)
			require.True(t, n.served(t).Equal(old), "the old certificate must still be served")
			require.Equal(t, oldCert, n.read(t, DefaultCertPath))
			require.Equal(t, oldKey, n.read(t, DefaultKeyPath))
		})
	}

	t.Run("directory missing", func(t *testing.T) {
		cfg := n.config(t)
		cfg.CertPath = "/etc/nginx/no-such-dir/cert.pem"
		_, err := Install(t.Context(), cfg, good)
		require.ErrorContains(t, err, "install the new files: write into /etc/nginx/no-such-dir/")
		require.ErrorContains(t, err, "; nothing was changed")
		require.True(t, n.served(t).Equal(old))
		require.Equal(t, oldKey, n.read(t, DefaultKeyPath))
		require.Equal(t, "cert.pem\nkey.pem\n", n.sh(t, "ls -A /etc/nginx/tls"), "no temporary file left behind")
	})

	t.Run("certificate path is a directory", func(t *testing.T) {
		cfg := n.config(t)
		cfg.CertPath = "/etc/nginx/tls"
		_, err := Install(t.Context(), cfg, good)
		require.ErrorContains(t, err, "read the current certificate: read /etc/nginx/tls in container "+n.name+": not a regular file")
		require.True(t, n.served(t).Equal(old))
		require.Equal(t, "cert.pem\nkey.pem\n", n.sh(t, "ls -A /etc/nginx/tls"))
	})
}

func TestInstallNginxTestFails(t *testing.T) {
	n := startNginx(t)
	old := n.served(t)
	oldCert, oldKey := n.read(t, DefaultCertPath), n.read(t, DefaultKeyPath)
	pair, _ := newCA(t, "Test Root", nil).leaf(t, leafOpts{})

	t.Run("key path nginx does not use", func(t *testing.T) {
		// The pair is valid, but the agent is configured with a key path
		// nginx.conf does not name: nginx would pair the new certificate
		// with the old key.pem, which nginx -t catches.
		cfg := n.config(t)
		cfg.KeyPath = "/etc/nginx/tls/other-key.pem"
		_, err := Install(t.Context(), cfg, pair)
		require.ErrorIs(t, err, ErrRejected)
		require.NotErrorIs(t, err, ErrRollback)
		require.ErrorContains(t, err, "nginx -t exited with status 1")
		require.ErrorContains(t, err, "key values mismatch")
		require.ErrorContains(t, err, "the old certificate and key are back in place, nginx was not reloaded")
		t.Log(err)

		require.True(t, n.served(t).Equal(old))
		require.Equal(t, oldCert, n.read(t, DefaultCertPath))
		require.Equal(t, oldKey, n.read(t, DefaultKeyPath))
		require.Nil(t, n.read(t, cfg.KeyPath), "a key file that did not exist before must be gone again")
		require.Equal(t, "cert.pem\nkey.pem\n", n.sh(t, "ls -A /etc/nginx/tls"))
	})

	t.Run("nginx configuration broken", func(t *testing.T) {
		// Someone broke the configuration on the host; the running nginx
		// still has the good one. Installing must not reload into it.
		n.sh(t, "echo 'bogus_directive on;' >>/etc/nginx/forlock-upstream.conf")
		_, err := Install(t.Context(), n.config(t), pair)
		require.ErrorIs(t, err, ErrRejected)
		require.ErrorContains(t, err, `unknown directive "bogus_directive"`)
		require.True(t, n.served(t).Equal(old))
		require.Equal(t, oldCert, n.read(t, DefaultCertPath))
		require.Equal(t, oldKey, n.read(t, DefaultKeyPath))
	})
}

func TestInstallNotServedRollsBack(t *testing.T) {
	n := startNginx(t)
	ca := newCA(t, "Test Root", nil)
	pairA, leafA := ca.leaf(t, leafOpts{})
	_, err := Install(t.Context(), n.config(t), pairA)
	require.NoError(t, err)
	pairB, leafB := ca.leaf(t, leafOpts{})

	t.Run("confirm address serves the old certificate", func(t *testing.T) {
		// The handshake address is not this nginx: it keeps presenting A,
		// so B is never confirmed; the rollback puts A back and sees A.
		cfg := n.config(t)
		cfg.Addr = fakeTLS(t, pairA.CertPEM, pairA.KeyPEM)
		cfg.ConfirmTimeout = time.Second
		_, err := Install(t.Context(), cfg, pairB)
		require.ErrorIs(t, err, ErrNotServed)
		require.NotErrorIs(t, err, ErrRollback)
		require.ErrorContains(t, err, "serves serial "+SerialHex(leafA.SerialNumber)+` ("CN=localhost"), not serial `+SerialHex(leafB.SerialNumber))
		require.ErrorContains(t, err, "the old certificate (serial "+SerialHex(leafA.SerialNumber)+") is back and served")
		t.Log(err)

		n.requireServes(t, leafA)
		require.Equal(t, string(pairA.CertPEM), string(n.read(t, DefaultCertPath)))
		require.Equal(t, string(pairA.KeyPEM), string(n.read(t, DefaultKeyPath)))
	})

	t.Run("old certificate not confirmed either", func(t *testing.T) {
		other, _ := ca.leaf(t, leafOpts{})
		cfg := n.config(t)
		cfg.Addr = fakeTLS(t, other.CertPEM, other.KeyPEM)
		cfg.ConfirmTimeout = 500 * time.Millisecond
		_, err := Install(t.Context(), cfg, pairB)
		require.ErrorIs(t, err, ErrNotServed)
		require.ErrorIs(t, err, ErrRollback)
		require.ErrorContains(t, err, "the old files are back and nginx reloaded, but the old certificate (serial "+SerialHex(leafA.SerialNumber)+") is not served either")

		n.requireServes(t, leafA)
		require.Equal(t, string(pairA.CertPEM), string(n.read(t, DefaultCertPath)))
	})

	t.Run("task cancelled while confirming", func(t *testing.T) {
		// The rollback still runs to the end when the task's context ends.
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		var once sync.Once
		cfg := n.config(t)
		cfg.Addr = fakeTLS(t, pairA.CertPEM, pairA.KeyPEM, func() { once.Do(cancel) })
		_, err := Install(ctx, cfg, pairB)
		require.ErrorIs(t, err, ErrNotServed)
		require.ErrorIs(t, err, context.Canceled)
		require.NotErrorIs(t, err, ErrRollback)
		n.requireServes(t, leafA)
		require.Equal(t, string(pairA.KeyPEM), string(n.read(t, DefaultKeyPath)))
	})
	requireNoKey(t, n.logs.String(), pairA.KeyPEM)
	requireNoKey(t, n.logs.String(), pairB.KeyPEM)
}

func TestInstallConfig(t *testing.T) {
	pair, _ := newCA(t, "Test Root", nil).leaf(t, leafOpts{})
	rt, err := dockerrt.New(dockerrt.Config{}) // never contacted: the config is refused first
	require.NoError(t, err)
	t.Cleanup(func() { _ = rt.Close() })
	base := Config{Docker: rt, Names: []string{"localhost"}, Addr: "127.0.0.1:443"}
	for _, tt := range []struct {
		name string
		edit func(*Config)
		err  string
	}{
		{"no docker", func(c *Config) { c.Docker = nil }, "no Docker engine"},
		{"no address", func(c *Config) { c.Addr = "" }, "no address to confirm"},
		{"bad address", func(c *Config) { c.Addr = "localhost" }, `address "localhost": want host:port`},
		{"no names", func(c *Config) { c.Names = nil }, "no names the certificate must cover"},
		{"relative path", func(c *Config) { c.CertPath = "tls/cert.pem" }, `path "tls/cert.pem": want an absolute file path`},
		{"same path", func(c *Config) { c.KeyPath = DefaultCertPath }, "certificate and key share the path"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := base
			tt.edit(&cfg)
			_, err := Install(t.Context(), cfg, pair)
			require.ErrorContains(t, err, tt.err)
		})
	}
	cfg, err := base.check()
	require.NoError(t, err)
	require.Equal(t, "nginx", cfg.Service)
	require.Equal(t, "localhost", cfg.ServerName)
	require.Equal(t, DefaultConfirmTimeout, cfg.ConfirmTimeout)
	base.Names = []string{"127.0.0.1", "node.example"}
	cfg, err = base.check()
	require.NoError(t, err)
	require.Equal(t, "node.example", cfg.ServerName, "SNI is never an IP address")
}

func TestServed(t *testing.T) {
	pair, leaf := newCA(t, "Test Root", nil).leaf(t, leafOpts{})
	addr := fakeTLS(t, pair.CertPEM, pair.KeyPEM)
	got, err := Served(t.Context(), addr, "localhost")
	require.NoError(t, err)
	require.True(t, got.Equal(leaf))

	// Nothing listens on port 1.
	_, err = Served(t.Context(), "127.0.0.1:1", "")
	require.ErrorContains(t, err, "tls handshake with 127.0.0.1:1")
	require.True(t, strings.Contains(err.Error(), "refused") || strings.Contains(err.Error(), "connect"), err.Error())
}
