package agent

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/forlock/fleet/internal/protocol"
)

func TestValidateName(t *testing.T) {
	tests := []struct {
		name    string
		wantErr string
	}{
		{"web-1", ""},
		{"a", ""},
		{"node.example.net", ""},
		{"0abc9", ""},
		{strings.Repeat("a", 63), ""},
		{"", "must be 1 to 63 characters long"},
		{strings.Repeat("a", 64), "must be 1 to 63 characters long"},
		{"Web-1", "may hold only lower-case letters, digits, '-' and '.'"},
		{"web_1", "may hold only lower-case letters, digits, '-' and '.'"},
		{"wéb", "may hold only lower-case letters"},
		{"-web", "must start and end with a letter or digit"},
		{"web.", "must start and end with a letter or digit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := validateName(tt.name)
			if tt.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tt.wantErr)
		})
	}
}

func TestConfigValidate(t *testing.T) {
	base := Config{ControlPlane: "cp.example.net:7443", Name: "web-1"}
	tests := []struct {
		name    string
		mod     func(*Config)
		wantErr string
	}{
		{"ok", func(*Config) {}, ""},
		{"no control plane", func(c *Config) { c.ControlPlane = "" }, "control plane address is not set: pass --control-plane HOST:PORT"},
		{"no port", func(c *Config) { c.ControlPlane = "cp.example.net" }, `control plane address "cp.example.net": want HOST:PORT`},
		{"empty host", func(c *Config) { c.ControlPlane = ":7443" }, "host is empty"},
		{"bad port", func(c *Config) { c.ControlPlane = "cp:http" }, `port "http" is not a number from 1 to 65535`},
		{"port zero", func(c *Config) { c.ControlPlane = "cp:0" }, `port "0" is not a number`},
		{"port too big", func(c *Config) { c.ControlPlane = "cp:65536" }, `port "65536"`},
		{"ipv6", func(c *Config) { c.ControlPlane = "[::1]:7443" }, ""},
		{"bad name", func(c *Config) { c.Name = "Web" }, "fix --name or name in the config file"},
		{"token with space", func(c *Config) { c.JoinToken = "abc def" }, "join token contains spaces"},
		{"token trimmed", func(c *Config) { c.JoinToken = " abc\n" }, ""},
		{"negative backoff", func(c *Config) { c.MinBackoff = -1 }, "must not be negative"},
		{"inverted backoff", func(c *Config) { c.MinBackoff, c.MaxBackoff = time.Minute, time.Second }, "minimum backoff 1m0s exceeds maximum backoff 1s"},
		{"nil task handler", func(c *Config) { c.TaskHandlers = map[protocol.Kind]TaskHandler{"slow": nil} }, `task handler for kind "slow": want a kind name and a handler`},
		{"unnamed task handler", func(c *Config) { c.TaskHandlers = map[protocol.Kind]TaskHandler{"": noopHandler} }, `task handler for kind ""`},
		{"task handler", func(c *Config) { c.TaskHandlers = map[protocol.Kind]TaskHandler{"health_check": noopHandler} }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := base
			tt.mod(&cfg)
			_, err := New(cfg)
			if tt.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tt.wantErr)
			require.ErrorContains(t, err, "agent config: ")
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	cfg, err := Config{ControlPlane: "cp:1", Name: "n", JoinToken: " tok\n"}.validate()
	require.NoError(t, err)
	require.Equal(t, DefaultStateDir, cfg.StateDir)
	require.Equal(t, "tok", cfg.JoinToken)
	require.NotNil(t, cfg.Logger)

	cfg, err = Config{ControlPlane: "cp:1", Name: "n", StateDir: "rel/dir"}.validate()
	require.NoError(t, err)
	wd, err := os.Getwd()
	require.NoError(t, err)
	require.Equal(t, wd+"/rel/dir", cfg.StateDir, "a relative state directory is made absolute")

	host, err := os.Hostname()
	require.NoError(t, err)
	cfg, err = Config{ControlPlane: "cp:1"}.validate()
	if validateName(strings.ToLower(host)) != nil {
		require.ErrorContains(t, err, "the host name cannot serve as node name")
		require.ErrorContains(t, err, "pass --name")
		return
	}
	require.NoError(t, err)
	require.Equal(t, strings.ToLower(host), cfg.Name)
}
