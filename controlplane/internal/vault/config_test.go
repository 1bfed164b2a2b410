package vault

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestConfigDefaults(t *testing.T) {
	cfg, method, err := Config{Address: "https://vault.internal:8200/", TokenFile: "/run/token", PKIMount: "/pki-nodes/"}.withDefaults()
	require.NoError(t, err)
	require.Equal(t, authTokenFile, method)
	require.Equal(t, "https://vault.internal:8200", cfg.Address)
	require.Equal(t, "pki-nodes", cfg.PKIMount)
	require.Equal(t, DefaultKVMount, cfg.KVMount)
	require.Equal(t, DefaultTransitMount, cfg.TransitMount)
	require.Equal(t, DefaultAppRoleMount, cfg.AppRoleMount)
	require.Equal(t, DefaultRequestTimeout, cfg.RequestTimeout)
	require.NotNil(t, cfg.Logger)

	_, method, err = Config{Address: "http://127.0.0.1:8200", RoleID: "r", SecretIDFile: "/run/sid"}.withDefaults()
	require.NoError(t, err)
	require.Equal(t, authAppRole, method)
}

// Plain http is for loopback only, unless the config says otherwise.
func TestConfigPlainHTTP(t *testing.T) {
	for _, tt := range []struct {
		addr  string
		allow bool
		ok    bool
	}{
		{"http://127.0.0.1:8200", false, true},
		{"http://[::1]:8200", false, true},
		{"http://localhost:8200", false, true},
		{"https://vault.internal:8200", false, true},
		{"http://vault.internal:8200", false, false},
		{"http://10.0.0.5:8200", false, false},
		{"http://vault.internal:8200", true, true},
	} {
		t.Run(fmt.Sprintf("%s allow=%v", tt.addr, tt.allow), func(t *testing.T) {
			cfg, _, err := Config{Address: tt.addr, Token: "t", AllowInsecureHTTP: tt.allow}.withDefaults()
			if tt.ok {
				require.NoError(t, err)
				require.Equal(t, tt.allow, cfg.insecure(), "only an allowed remote http address is insecure")
				return
			}
			require.ErrorContains(t, err, fmt.Sprintf("address %q is plain http: the Vault token would travel in clear; use https://, or set allow_insecure_http: true", tt.addr))
		})
	}
}

func TestConfigErrors(t *testing.T) {
	ok := Config{Address: "https://vault:8200", Token: "t"}
	tests := []struct {
		name   string
		mutate func(*Config)
		want   string
	}{
		{"no address", func(c *Config) { c.Address = "" }, "address is empty: set it to Vault's URL"},
		{"not a URL", func(c *Config) { c.Address = "vault:8200" }, `address "vault:8200" is not an http:// or https:// URL with a host`},
		{"no login", func(c *Config) { c.Token = "" }, "no way to log in: set a token file, a token, or an approle role ID and secret ID file"},
		{"two logins", func(c *Config) { c.TokenFile = "/f" }, "token and token file are set: choose one way to log in"},
		{"approle without secret ID file", func(c *Config) { c.Token, c.RoleID = "", "r" }, "approle needs both a role ID and a secret ID file"},
		{"mount escapes", func(c *Config) { c.KVMount = "secret/../sys" }, `kv mount "secret/../sys": has an empty, '.' or '..' segment`},
		{"role with a slash", func(c *Config) { c.PKIRole = "a/b" }, `pki role "a/b": must be one path segment without ':' or spaces`},
		{"key with a colon", func(c *Config) { c.TransitKey = "k:v1" }, `transit key "k:v1": must be one path segment`},
		{"negative timeout", func(c *Config) { c.RequestTimeout = -time.Second }, "request timeout -1s is negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := ok
			tt.mutate(&cfg)
			_, _, err := cfg.withDefaults()
			require.ErrorContains(t, err, "vault config: ")
			require.ErrorContains(t, err, tt.want)
		})
	}
}

// A config error never repeats the token.
func TestConfigErrorHidesToken(t *testing.T) {
	_, _, err := Config{Address: "nope", Token: "s.supersecret"}.withDefaults()
	require.Error(t, err)
	require.NotContains(t, err.Error(), "supersecret")
}
