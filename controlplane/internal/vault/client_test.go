package vault

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/forlock/fleet/controlplane/internal/secretfile"
)

func TestTokenLogin(t *testing.T) {
	cfg := fleetConfig(t)
	c := newClient(t, cfg)
	require.Equal(t, 1, c.loginCount())
	_, err := c.Transit(context.Background())
	require.NoError(t, err, "the fleet token can read its transit key")

	t.Run("token file", func(t *testing.T) {
		cfg := fleetConfig(t)
		cfg.TokenFile, cfg.Token = writeSecretFile(t, cfg.Token), ""
		newClient(t, cfg)
	})
	for _, mode := range []os.FileMode{0o644, 0o640} {
		t.Run(fmt.Sprintf("token file mode %04o", mode), func(t *testing.T) {
			cfg := fleetConfig(t)
			p := writeSecretFile(t, cfg.Token)
			require.NoError(t, os.Chmod(p, mode))
			cfg.TokenFile, cfg.Token = p, ""
			_, err := New(context.Background(), cfg)
			require.ErrorIs(t, err, secretfile.ErrExposed)
			require.ErrorContains(t, err, fmt.Sprintf("%s has mode %04o: it holds the Vault token; run chmod 600 %s", p, mode, p))
		})
	}
	t.Run("revoked token", func(t *testing.T) {
		cfg := fleetConfig(t)
		require.NoError(t, admin(t).Auth().Token().RevokeTree(cfg.Token))
		_, err := New(context.Background(), cfg)
		require.ErrorIs(t, err, ErrForbidden)
		require.ErrorContains(t, err, "refused the control plane's token (expired, revoked or wrong, or its policies lack read on auth/token/lookup-self, which Vault's default policy grants): give it a valid token")
		require.NotContains(t, err.Error(), cfg.Token)
	})
}

// newAppRole creates an AppRole with the fleet policy and the token TTLs and
// returns its role ID and a file holding a fresh secret ID.
func newAppRole(t *testing.T, tokenTTL, tokenMaxTTL string) (roleID, secretIDFile, secretID string) {
	t.Helper()
	a := admin(t)
	name := unique("cp")
	_, err := a.Logical().Write("auth/approle/role/"+name, map[string]any{
		"token_policies": []string{policyFleet}, "token_ttl": tokenTTL, "token_max_ttl": tokenMaxTTL,
	})
	require.NoError(t, err)
	s, err := a.Logical().Read("auth/approle/role/" + name + "/role-id")
	require.NoError(t, err)
	roleID = s.Data["role_id"].(string)
	s, err = a.Logical().Write("auth/approle/role/"+name+"/secret-id", nil)
	require.NoError(t, err)
	secretID = s.Data["secret_id"].(string)
	return roleID, writeSecretFile(t, secretID), secretID
}

func TestAppRoleLogin(t *testing.T) {
	roleID, file, _ := newAppRole(t, "1h", "2h")
	cfg := fleetConfig(t)
	cfg.Token, cfg.RoleID, cfg.SecretIDFile = "", roleID, file
	c := newClient(t, cfg)
	_, err := c.Transit(context.Background())
	require.NoError(t, err, "the AppRole token carries the fleet policy")

	t.Run("wrong secret ID", func(t *testing.T) {
		cfg := cfg
		cfg.SecretIDFile = writeSecretFile(t, "00000000-0000-0000-0000-000000000000")
		_, err := New(context.Background(), cfg)
		require.ErrorContains(t, err, "login auth/approle/login: vault at "+cfg.Address)
		require.ErrorContains(t, err, "if the role ID or the secret ID in "+cfg.SecretIDFile+" is wrong, expired or used up, write a new secret ID there")
		require.NotContains(t, err.Error(), "00000000-0000")
	})
	t.Run("empty secret ID file", func(t *testing.T) {
		cfg := cfg
		cfg.SecretIDFile = writeSecretFile(t, "  ")
		_, err := New(context.Background(), cfg)
		require.ErrorContains(t, err, "Vault secret ID file "+cfg.SecretIDFile+": empty: write the Vault secret ID there")
	})
}

// runClient runs c.Run until the test ends.
func runClient(t *testing.T, c *Client) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { require.NoError(t, c.Run(ctx)) })
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
}

// ttlOf is the remaining TTL of the client's token, as Vault sees it.
func ttlOf(t *testing.T, c *Client) time.Duration {
	t.Helper()
	s, err := c.api.Auth().Token().LookupSelf()
	require.NoError(t, err, "the client's token is still valid")
	ttl, err := s.TokenTTL()
	require.NoError(t, err)
	return ttl
}

// A token of 3 s lives on while Run renews it.
func TestRunRenewsToken(t *testing.T) {
	requireVault(t)
	cfg := fleetConfig(t)
	cfg.Token = newToken(t, 3*time.Second, policyFleet)
	c := newClient(t, cfg)
	runClient(t, c)
	time.Sleep(7 * time.Second) // two lifetimes
	require.Positive(t, ttlOf(t, c))
	require.Equal(t, 1, c.loginCount(), "renewed, not logged in again")
	_, err := c.Transit(context.Background())
	require.NoError(t, err)
}

// An AppRole token at its max TTL is replaced by a new login.
func TestRunLogsInAgainAtMaxTTL(t *testing.T) {
	roleID, file, _ := newAppRole(t, "2s", "4s")
	cfg := fleetConfig(t)
	cfg.Token, cfg.RoleID, cfg.SecretIDFile = "", roleID, file
	c := newClient(t, cfg)
	runClient(t, c)
	time.Sleep(9 * time.Second) // two max TTLs
	require.GreaterOrEqual(t, c.loginCount(), 2)
	// Vault reports whole seconds: a token in its last second reads 0
	// until the watcher logs in again, so wait for a fresh one.
	// A lookup may also fail in the instant between expiry and re-login
	// on a loaded machine (a 4 s max TTL leaves the watcher little grace).
	require.Eventually(t, func() bool {
		s, err := c.api.Auth().Token().LookupSelf()
		if err != nil {
			return false
		}
		ttl, err := s.TokenTTL()
		return err == nil && ttl > 0
	}, 5*time.Second, 100*time.Millisecond, "a fresh token after the re-login")
	_, err := c.Transit(context.Background())
	require.NoError(t, err)
}

// A root token has no TTL: Run has nothing to do and returns when told.
func TestRunRootToken(t *testing.T) {
	cfg := fleetConfig(t)
	cfg.Token = testRootToken
	c := newClient(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	require.NoError(t, c.Run(ctx))
}
