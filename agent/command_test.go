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
)

// resolve parses args as forlock-agent's flags and resolves the settings.
func resolve(t *testing.T, args []string, env map[string]string) (settings, error) {
	t.Helper()
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	bindFlags(fs)
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
		want settings
	}{
		{
			name: "defaults",
			want: settings{logLevel: slog.LevelInfo, logFormat: "json"},
		},
		{
			name: "file over defaults",
			args: []string{"--config", cfgFile},
			want: settings{cfg: Config{
				ControlPlane: "file:1", CAFile: filepath.Join(dir, "ca.pem"), JoinTokenFile: filepath.Join(dir, "token"),
				StateDir: "/file/state", Name: "from-file",
			}, logLevel: slog.LevelWarn, logFormat: "text"},
		},
		{
			name: "flags over file",
			args: []string{
				"--config", cfgFile, "--control-plane", "flag:2", "--ca-file", "/f/ca", "--join-token-file", "/f/tok",
				"--state-dir", "/f/state", "--name", "from-flag", "--log-level", "debug", "--log-format", "json",
			},
			want: settings{cfg: Config{
				ControlPlane: "flag:2", CAFile: "/f/ca", JoinTokenFile: "/f/tok", StateDir: "/f/state", Name: "from-flag",
			}, logLevel: slog.LevelDebug, logFormat: "json"},
		},
		{
			name: "an empty flag still overrides the file",
			args: []string{"--config", cfgFile, "--name", ""},
			want: settings{cfg: Config{
				ControlPlane: "file:1", CAFile: filepath.Join(dir, "ca.pem"), JoinTokenFile: filepath.Join(dir, "token"),
				StateDir: "/file/state",
			}, logLevel: slog.LevelWarn, logFormat: "text"},
		},
		{
			name: "join token from the environment",
			env:  map[string]string{JoinTokenEnv: "env-token"},
			want: settings{cfg: Config{JoinToken: "env-token"}, logLevel: slog.LevelInfo, logFormat: "json"},
		},
		{
			name: "join token flag over the environment",
			args: []string{"--join-token", "flag-token"},
			env:  map[string]string{JoinTokenEnv: "env-token"},
			want: settings{cfg: Config{JoinToken: "flag-token"}, logLevel: slog.LevelInfo, logFormat: "json"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := resolve(t, tt.args, tt.env)
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
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
		{"help", []string{"--help"}, nil, exitOK, "--join-token-file", ""},
		{"version", []string{"--version"}, nil, exitOK, "forlock-agent version", ""},
		{"unknown flag", []string{"--nope"}, nil, exitUsage, "", "forlock-agent: unknown flag: --nope"},
		{"arguments", []string{"extra"}, nil, exitUsage, "", `unexpected argument "extra": forlock-agent takes flags only`},
		{"bad config file", []string{"--config", badCfg}, nil, exitUsage, "", "did you mean state_dir?"},
		{"bad config", []string{"--control-plane", "nope"}, nil, exitUsage, "", `agent config: control plane address "nope"`},
		{
			"nothing to enroll with",
			[]string{"--control-plane", "127.0.0.1:1", "--name", "n", "--state-dir", filepath.Join(dir, "state")},
			nil, exitFailure, "", "no join token to enroll with",
		},
		{
			"no CA to enroll with",
			[]string{"--control-plane", "127.0.0.1:1", "--name", "n", "--state-dir", filepath.Join(dir, "state")},
			map[string]string{JoinTokenEnv: "s3cret-token"}, exitFailure, "", "pass --ca-file",
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
