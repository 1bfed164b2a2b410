package agent

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/spf13/pflag"
	"github.com/stretchr/testify/require"

	"github.com/forlock/fleet/internal/settings"
)

// resolve parses args as forlock-agent's flags and resolves the settings.
func resolve(t *testing.T, args []string, env map[string]string) (agentSettings, error) {
	t.Helper()
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	(&agentSettings{}).table().AddFlags(fs)
	require.NoError(t, fs.Parse(args))
	return resolveSettings(fs, func(k string) string { return env[k] })
}

func TestSettingsPrecedence(t *testing.T) {
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "agent.yaml")
	require.NoError(t, os.WriteFile(cfgFile, []byte(`version: 1
control_plane: file:1
ca_file: ca.pem
join_token_file: token
state_dir: /file/state
name: from-file
log_level: warn
log_format: text
`), 0o600))

	tests := []struct {
		name string
		args []string
		env  map[string]string
		want func(*agentSettings)
	}{
		{
			name: "defaults",
			want: func(*agentSettings) {},
		},
		{
			name: "file over defaults",
			args: []string{"--config", cfgFile},
			want: func(st *agentSettings) {
				c := &st.cfg
				c.ControlPlane, c.CAFile, c.JoinTokenFile = "file:1", filepath.Join(dir, "ca.pem"), filepath.Join(dir, "token")
				c.StateDir, c.Name, st.logLevel, st.logFormat = "/file/state", "from-file", slog.LevelWarn, "text"
			},
		},
		{
			name: "flags over file",
			args: []string{
				"--config", cfgFile, "--control-plane", "flag:2", "--ca-file", "/f/ca", "--join-token-file", "/f/tok",
				"--state-dir", "/f/state", "--name", "from-flag", "--log-level", "debug", "--log-format", "json",
			},
			want: func(st *agentSettings) {
				c := &st.cfg
				c.ControlPlane, c.CAFile, c.JoinTokenFile, c.StateDir, c.Name = "flag:2", "/f/ca", "/f/tok", "/f/state", "from-flag"
				st.logLevel = slog.LevelDebug
			},
		},
		{
			name: "an empty flag still overrides the file",
			args: []string{"--config", cfgFile, "--name", ""},
			want: func(st *agentSettings) {
				c := &st.cfg
				c.ControlPlane, c.CAFile, c.JoinTokenFile = "file:1", filepath.Join(dir, "ca.pem"), filepath.Join(dir, "token")
				c.StateDir, st.logLevel, st.logFormat = "/file/state", slog.LevelWarn, "text"
			},
		},
		{
			name: "join token from the environment",
			env:  map[string]string{JoinTokenEnv: "env-token"},
			want: func(st *agentSettings) { st.cfg.JoinToken = "env-token" },
		},
		{
			name: "join token flag over the environment",
			args: []string{"--join-token", "flag-token"},
			env:  map[string]string{JoinTokenEnv: "env-token"},
			want: func(st *agentSettings) { st.cfg.JoinToken = "flag-token" },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := resolve(t, tt.args, tt.env)
			require.NoError(t, err)
			want, err := parseConfig([]byte("version: 1\n"))
			require.NoError(t, err)
			tt.want(&want)
			require.Equal(t, want, got)
		})
	}
}

func TestSettingsErrors(t *testing.T) {
	_, err := resolve(t, []string{"--log-level", "loud"}, nil)
	require.EqualError(t, err, `--log-level: log level "loud" is not one of debug, info, warn, error`)
	_, err = resolve(t, []string{"--log-format", "xml"}, nil)
	require.EqualError(t, err, `--log-format: log format "xml" is not json or text`)
	_, err = resolve(t, []string{"--config", filepath.Join(t.TempDir(), "none.yaml")}, nil)
	require.ErrorContains(t, err, "config file: open ")
}

func TestRunExitCodes(t *testing.T) {
	dir := t.TempDir()
	badCfg := filepath.Join(dir, "bad.yaml")
	require.NoError(t, os.WriteFile(badCfg, []byte("version: 1\nstate_dri: x\n"), 0o600))

	tests := []struct {
		name       string
		args       []string
		env        map[string]string
		wantCode   int
		wantStdout string
		wantStderr string
	}{
		{"help", []string{"--help"}, nil, settings.ExitOK, "--join-token-file", ""},
		{"version", []string{"--version"}, nil, settings.ExitOK, "forlock-agent version", ""},
		{"unknown flag", []string{"--nope"}, nil, settings.ExitUsage, "", "forlock-agent: unknown flag: --nope"},
		{"arguments", []string{"extra"}, nil, settings.ExitUsage, "", `unexpected argument "extra": forlock-agent takes flags only`},
		{"bad config file", []string{"--config", badCfg}, nil, settings.ExitUsage, "", "did you mean state_dir?"},
		{"bad config", []string{"--control-plane", "nope"}, nil, settings.ExitUsage, "", `agent config: control plane address "nope"`},
		{
			"nothing to enroll with",
			[]string{"--control-plane", "127.0.0.1:1", "--name", "n", "--state-dir", filepath.Join(dir, "state")},
			nil, settings.ExitFailure, "", "no join token to enroll with",
		},
		{
			"no CA to enroll with",
			[]string{"--control-plane", "127.0.0.1:1", "--name", "n", "--state-dir", filepath.Join(dir, "state")},
			map[string]string{JoinTokenEnv: "s3cret-token"}, settings.ExitFailure, "", "pass --ca-file",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), tt.args, &stdout, &stderr, func(k string) string { return tt.env[k] }, nil)
			require.Equal(t, tt.wantCode, code, "stderr: %s", stderr.String())
			require.Contains(t, stdout.String(), tt.wantStdout)
			require.Contains(t, stderr.String(), tt.wantStderr)
			require.NotContains(t, stderr.String(), "s3cret-token")
		})
	}
}
