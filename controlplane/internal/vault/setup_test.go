package vault

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
	"github.com/stretchr/testify/require"
)

// What setupShared creates on the shared dev server.
const (
	rolePKI      = "node"  // ECDSA P-256, max_ttl 2160h
	roleShort    = "short" // ECDSA P-256, max_ttl 720h
	roleRSA      = "rsa"   // RSA 2048: a misconfigured role
	policyFleet  = "fleet" // what the control plane needs
	policyNarrow = "narrow"
)

// policies are the dev server's policies by name, in HCL.
var policies = map[string]string{
	policyFleet: `
path "pki/issue/*"        { capabilities = ["update"] }
path "secret/data/*"      { capabilities = ["read"] }
path "transit/keys/*"     { capabilities = ["read"] }
path "transit/encrypt/*"  { capabilities = ["update"] }
path "transit/decrypt/*"  { capabilities = ["update"] }
path "transit/rewrap/*"   { capabilities = ["update"] }
path "transit/datakey/plaintext/*" { capabilities = ["update"] }
`,
	policyNarrow: `
path "secret/data/allowed/*" { capabilities = ["read"] }
`,
}

// newAdmin is a root client of the dev server at addr, and what closes its
// connections.
func newAdmin(addr, token string) (*api.Client, func(), error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	c, err := api.NewClient(&api.Config{Address: addr, HttpClient: &http.Client{Transport: tr}, Timeout: 30 * time.Second})
	if err != nil {
		return nil, nil, err
	}
	c.SetToken(token)
	return c, tr.CloseIdleConnections, nil
}

// setupShared enables and configures the engines the tests use: PKI with an
// ECDSA P-256 root and three roles, Transit, AppRole, and the policies. The
// dev server already has KV v2 at secret/.
func setupShared(addr string) error {
	admin, closeAdmin, err := newAdmin(addr, testRootToken)
	if err != nil {
		return err
	}
	defer closeAdmin()
	ctx := context.Background()
	sys := admin.Sys()
	if err := sys.MountWithContext(ctx, "pki", &api.MountInput{Type: "pki", Config: api.MountConfigInput{MaxLeaseTTL: "87600h"}}); err != nil {
		return err
	}
	if err := sys.MountWithContext(ctx, "transit", &api.MountInput{Type: "transit"}); err != nil {
		return err
	}
	if err := sys.EnableAuthWithOptionsWithContext(ctx, "approle", &api.EnableAuthOptions{Type: "approle"}); err != nil {
		return err
	}
	writes := []struct {
		path string
		data map[string]any
	}{
		{"pki/root/generate/internal", map[string]any{"common_name": "forlock vault test root", "key_type": "ec", "key_bits": 256, "ttl": "87600h"}},
		{"pki/roles/" + rolePKI, map[string]any{"key_type": "ec", "key_bits": 256, "allow_any_name": true, "allow_ip_sans": true, "max_ttl": "2160h"}},
		{"pki/roles/" + roleShort, map[string]any{"key_type": "ec", "key_bits": 256, "allow_any_name": true, "allow_ip_sans": true, "max_ttl": "720h"}},
		{"pki/roles/" + roleRSA, map[string]any{"key_type": "rsa", "key_bits": 2048, "allow_any_name": true, "max_ttl": "2160h"}},
	}
	for _, w := range writes {
		if _, err := admin.Logical().WriteWithContext(ctx, w.path, w.data); err != nil {
			return fmt.Errorf("write %s: %w", w.path, err)
		}
	}
	for name, rules := range policies {
		if err := sys.PutPolicyWithContext(ctx, name, rules); err != nil {
			return fmt.Errorf("policy %s: %w", name, err)
		}
	}
	return nil
}

// admin returns a root client of the shared dev server.
func admin(t *testing.T) *api.Client {
	t.Helper()
	c, closeAdmin, err := newAdmin(requireVault(t), testRootToken)
	require.NoError(t, err)
	t.Cleanup(closeAdmin)
	return c
}

var seq atomic.Int64

// unique returns a name no other test uses on the shared server.
func unique(prefix string) string { return fmt.Sprintf("%s%d", prefix, seq.Add(1)) }

// newTransitKey creates a fresh aes256-gcm96 Transit key and returns its name.
func newTransitKey(t *testing.T) string {
	t.Helper()
	name := unique("backup")
	_, err := admin(t).Logical().Write("transit/keys/"+name, map[string]any{"type": "aes256-gcm96"})
	require.NoError(t, err)
	return name
}

// newToken creates a token with the policies and TTL (0: no TTL limit but
// the mount's) and returns it.
func newToken(t *testing.T, ttl time.Duration, policies ...string) string {
	t.Helper()
	req := &api.TokenCreateRequest{Policies: policies, NoDefaultPolicy: false}
	if ttl > 0 {
		req.TTL = ttl.String()
		req.ExplicitMaxTTL = "1h"
	}
	s, err := admin(t).Auth().Token().Create(req)
	require.NoError(t, err)
	return s.Auth.ClientToken
}

// fleetConfig is a Config for the shared server with a token of the fleet
// policy, the node role and a fresh Transit key.
func fleetConfig(t *testing.T) Config {
	t.Helper()
	return Config{
		Address:        requireVault(t),
		Token:          newToken(t, 0, policyFleet),
		PKIRole:        rolePKI,
		TransitKey:     newTransitKey(t),
		RequestTimeout: 5 * time.Second,
		Logger:         testLogger(t),
	}
}

// newClient logs in with cfg and closes the client when the test ends.
func newClient(t *testing.T, cfg Config) *Client {
	t.Helper()
	c, err := New(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return c
}

// writeSecretFile writes a token or secret ID file of mode 0600.
func writeSecretFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "secret")
	require.NoError(t, os.WriteFile(p, []byte(content+"\n"), 0o600))
	return p
}

// testLogger logs to the test's output.
func testLogger(t *testing.T) *slog.Logger {
	t.Helper()
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}
