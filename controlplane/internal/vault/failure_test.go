package vault

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
	"github.com/stretchr/testify/require"
)

// ownConfig is a Config for a dev server of the test's own, with a PKI role
// and Transit key set up, logged in with a fleet-policy token.
func ownConfig(t *testing.T, addr string) Config {
	t.Helper()
	require.NoError(t, setupShared(addr))
	a, closeAdmin, err := newAdmin(addr, testRootToken)
	require.NoError(t, err)
	t.Cleanup(closeAdmin)
	_, err = a.Logical().Write("transit/keys/backup", nil)
	require.NoError(t, err)
	s, err := a.Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{policyFleet}})
	require.NoError(t, err)
	return Config{Address: addr, Token: s.Auth.ClientToken, PKIRole: rolePKI, TransitKey: "backup", RequestTimeout: 3 * time.Second, Logger: testLogger(t)}
}

func TestSealed(t *testing.T) {
	ctx := context.Background()
	addr, _ := startOwnServer(t)
	cfg := ownConfig(t, addr)
	c := newClient(t, cfg)
	tr, err := c.Transit(ctx)
	require.NoError(t, err)

	a, closeAdmin, err := newAdmin(addr, testRootToken)
	require.NoError(t, err)
	t.Cleanup(closeAdmin)
	require.NoError(t, a.Sys().Seal())

	sealed := fmt.Sprintf("vault at %s is sealed: unseal it (vault operator unseal) and retry", addr)
	_, err = c.IssueCertificate(ctx, "web1.fleet.test", nil, 0)
	require.ErrorIs(t, err, ErrSealed)
	require.EqualError(t, err, "update pki/issue/node: "+sealed)
	_, err = c.ReadCertificate(ctx, "nginx/web1")
	require.ErrorIs(t, err, ErrSealed)
	_, err = tr.Wrap(ctx, make([]byte, 32))
	require.ErrorIs(t, err, ErrSealed)
	_, err = tr.Unwrap(ctx, tr.KeyID(), []byte("vault:v1:AAAA"))
	require.ErrorIs(t, err, ErrSealed)
	_, err = New(ctx, cfg)
	require.ErrorIs(t, err, ErrSealed)
	require.ErrorContains(t, err, sealed)
	require.NotContains(t, err.Error(), cfg.Token)
}

func TestUnreachable(t *testing.T) {
	ctx := context.Background()
	addr, stop := startOwnServer(t)
	cfg := ownConfig(t, addr)
	c := newClient(t, cfg)
	tr, err := c.Transit(ctx)
	require.NoError(t, err)
	stop()

	calls := map[string]func() error{
		"issue": func() error { _, err := c.IssueCertificate(ctx, "web1.fleet.test", nil, 0); return err },
		"kv":    func() error { _, err := c.ReadCertificate(ctx, "nginx/web1"); return err },
		"wrap":  func() error { _, err := tr.Wrap(ctx, make([]byte, 32)); return err },
		"new":   func() error { _, err := New(ctx, cfg); return err },
	}
	for name, call := range calls {
		t.Run(name, func(t *testing.T) {
			start := time.Now()
			err := call()
			took := time.Since(start)
			t.Logf("%s failed after %s", name, took.Round(time.Millisecond))
			require.ErrorIs(t, err, ErrUnreachable)
			require.ErrorContains(t, err, "vault at "+addr+" is unreachable (")
			require.ErrorContains(t, err, "connection refused): check that it is running and the address is right")
			require.Less(t, took, cfg.RequestTimeout+time.Second, "bounded by the request timeout")
		})
	}
}

// A Vault that accepts connections but never answers fails within the
// request timeout.
func TestTimeout(t *testing.T) {
	// Connections complete in the kernel's backlog; nothing ever answers.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Close() })
	cfg := Config{Address: "http://" + l.Addr().String(), Token: "x", RequestTimeout: 500 * time.Millisecond}
	start := time.Now()
	_, err = New(context.Background(), cfg)
	require.ErrorIs(t, err, ErrUnreachable)
	require.ErrorContains(t, err, "did not answer within 500ms: check that it is running and reachable")
	require.Less(t, time.Since(start), 2*time.Second)
}

func TestForbidden(t *testing.T) {
	ctx := context.Background()
	cfg := fleetConfig(t)
	transitKey := cfg.TransitKey
	cfg.Token = newToken(t, 0, policyNarrow)
	c := newClient(t, cfg)

	_, err := c.IssueCertificate(ctx, "web1.fleet.test", nil, 0)
	require.ErrorIs(t, err, ErrForbidden)
	require.ErrorContains(t, err, "vault at "+cfg.Address+" forbids path pki/issue/node (permission denied): ")
	require.ErrorContains(t, err, `grant the policy of the control plane's token the "update" capability on pki/issue/node`)

	_, err = c.ReadCertificate(ctx, "nginx/web1")
	require.ErrorIs(t, err, ErrForbidden)
	require.ErrorContains(t, err, `the "read" capability on secret/data/nginx/web1`)

	_, err = c.Transit(ctx)
	require.ErrorIs(t, err, ErrForbidden)
	require.ErrorContains(t, err, `"read" capability on transit/keys/`+transitKey)
	require.NotContains(t, err.Error(), cfg.Token)
}

func TestDetails(t *testing.T) {
	require.Equal(t, "permission denied", details([]string{"1 error occurred:\n\t* permission denied\n\n"}))
	require.Equal(t, "a; b; c", details([]string{"2 errors occurred:\n\t* a\n\t* b\n\n", "c"}))
}
