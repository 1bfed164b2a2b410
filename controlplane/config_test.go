package controlplane

import (
	"bytes"
	"context"
	"flag"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/forlock/fleet/internal/settings"
)

// parseArgs resolves and validates the Config that args and env give,
// without starting anything.
func parseArgs(args []string, env func(string) (string, bool), stderr io.Writer) (*Config, error) {
	getenv := func(k string) string { v, _ := env(k); return v }
	var cfg *Config
	cmd := newCommand(getenv, io.Discard, stderr, func(_ context.Context, c *Config) error { cfg = c; return nil })
	cmd.SetArgs(settings.GoStyleArgs(args, cmd.Flags()))
	return cfg, cmd.Execute()
}

// parseFile decodes a config file's content over the defaults.
func parseFile(data []byte) (cpSettings, error) {
	var st cpSettings
	t := st.table()
	if err := t.Defaults(); err != nil {
		return st, err
	}
	return st, t.Decode(data, "")
}

func TestParseConfigFile(t *testing.T) {
	st, err := parseFile([]byte("version: 1\ndata_dir: /d\nlisten: 127.0.0.1:9\nadvertise_names: [cp.example.com]\nheartbeat_interval: 5s\n"))
	require.NoError(t, err)
	require.Equal(t, "/d", st.cfg.DataDir)
	require.Equal(t, []string{"cp.example.com"}, st.cfg.AdvertiseNames)
	require.Equal(t, 5*time.Second, st.cfg.HeartbeatInterval)

	for name, tc := range map[string]struct{ in, msg string }{
		"no version":     {"listen: :1\n", `version is missing: add "version: 1"`},
		"future":         {"version: 2\n", "version 2 is not supported"},
		"unknown field":  {"version: 1\nlisen: :1\n", "line 2: unknown key 'lisen' (did you mean listen?)"},
		"nested unknown": {"version: 1\nlimits:\n  auth_failure: 3\n", "line 3: unknown key 'limits.auth_failure' (did you mean limits.auth_failures?)"},
		"vault typo":     {"version: 1\nvault:\n  pki_mont: pki\n", "line 3: unknown key 'vault.pki_mont' (did you mean vault.pki_mount?)"},
		"bad duration":   {"version: 1\nheartbeat_interval: often\n", `line 2: heartbeat_interval: "often" is not a duration`},
		"bad vault time": {"version: 1\nvault:\n  request_timeout: soon\n", `line 3: vault.request_timeout: "soon" is not a duration`},
		"bad level":      {"version: 1\nlog_level: loud\n", `line 2: log_level: log level "loud" is not one of debug, info, warn, error`},
		"bad format":     {"version: 1\nlog_format: xml\n", `line 2: log_format: log format "xml" is not json or text`},
		"not yaml":       {"version: [1\n", "not valid YAML"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := parseFile([]byte(tc.in))
			require.ErrorContains(t, err, tc.msg)
		})
	}
}

func TestParseArgsPrecedence(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "cp.yaml")
	require.NoError(t, os.WriteFile(file, []byte("version: 1\ndata_dir: /from-file\nlisten: 127.0.0.1:1\nheartbeat_interval: 7s\n"), 0o600))
	env := map[string]string{"FORLOCK_LISTEN": "127.0.0.1:2"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }

	cfg, err := parseArgs([]string{"--config", file, "--data-dir", "/from-flag"}, lookup, &bytes.Buffer{})
	require.NoError(t, err)
	require.Equal(t, "/from-flag", cfg.DataDir) // flag beats file
	require.Equal(t, "127.0.0.1:2", cfg.Listen) // env beats file
	require.Equal(t, 7*time.Second, cfg.HeartbeatInterval)
	require.Equal(t, DefaultAgentCertTTL, cfg.AgentCertTTL)
	require.Equal(t, 5*time.Minute, cfg.AgentCertGrace)

	cfg, err = parseArgs([]string{"--agent-cert-grace", "90s"}, lookup, &bytes.Buffer{})
	require.NoError(t, err)
	require.Equal(t, 90*time.Second, cfg.AgentCertGrace)
	for _, bad := range []string{"11m0s", "500ms"} {
		_, err = parseArgs([]string{"--agent-cert-grace", bad}, lookup, &bytes.Buffer{})
		require.ErrorContains(t, err, "agent certificate grace "+bad+": must be between 1s and 10m0s")
	}
	_, err = parseArgs([]string{"--heartbeat-interval", "1ms"}, lookup, &bytes.Buffer{})
	require.ErrorContains(t, err, "between 100ms and 10m")
	_, err = parseArgs([]string{"--advertise-name", "bad name"}, lookup, &bytes.Buffer{})
	require.ErrorContains(t, err, "advertise name")
	_, err = parseArgs([]string{"stray"}, lookup, &bytes.Buffer{})
	require.ErrorContains(t, err, "unexpected argument")
}

func TestDataDirPermissionsChecked(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "open")
	require.NoError(t, os.Mkdir(dir, 0o755))
	_, err := New(Config{DataDir: dir, Listen: "127.0.0.1:0"})
	require.ErrorContains(t, err, "chmod 700")
}

func FuzzParseConfigFile(f *testing.F) {
	f.Add([]byte("version: 1\ndata_dir: /d\nlisten: :7443\nheartbeat_interval: 10s\n"))
	f.Add([]byte("version: 1\nadvertise_names: [a, b]\n"))
	f.Add([]byte("version: 1\nvault:\n  address: https://v:8200\n  request_timeout: 3s\ncerts:\n  extra_names: [localhost]\n  ttl: 2160h\n"))
	f.Add([]byte("version: 1\nbackup_schedules: [{name: d, cron: '@daily', only: [postgres], keep: 24h}]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := parseFile(data)
		if err != nil {
			require.NotEmpty(t, err.Error())
			return
		}
		_, err = backupSchedules(st.schedules)
		require.NoError(t, err, "a parsed file holds valid schedules")
		require.Contains(t, []string{"json", "text"}, st.logFormat)
	})
}

func TestExampleConfigParses(t *testing.T) {
	none := func(string) (string, bool) { return "", false }
	cfg, err := parseArgs([]string{"--config", filepath.Join("..", "deploy", "examples", "controlplane.yaml")}, none, &bytes.Buffer{})
	require.NoError(t, err, "deploy/examples/controlplane.yaml must stay valid")
	require.Equal(t, ":7443", cfg.Listen)
	require.Equal(t, []string{"fleet.example.com"}, cfg.AdvertiseNames)
}

// The example with every commented setting switched on decodes too, so
// the comments cannot drift from the keys.
func TestExampleConfigCommentsParse(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "deploy", "examples", "controlplane.yaml"))
	require.NoError(t, err)
	key := regexp.MustCompile(`^[a-z_]+:( |$)`)
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		switch rest, _ := strings.CutPrefix(line, "# "); {
		case strings.HasPrefix(rest, "  ") && strings.HasPrefix(strings.TrimSpace(rest), "#"):
			continue // an alternative left commented
		case strings.HasPrefix(rest, "  ") || key.MatchString(rest):
			line = rest
		}
		out = append(out, line)
	}
	st, err := parseFile([]byte(strings.Join(out, "\n")))
	require.NoError(t, err, "%s", strings.Join(out, "\n"))
	require.Equal(t, "forlock-backup", st.vault.TransitKey)
	require.Equal(t, 64<<20, int(st.cfg.Limits.DiskReserve))
	require.Len(t, st.schedules, 2)
	require.Len(t, st.overrides, 1)
}

var updateDocs = flag.Bool("update", false, "rewrite the settings table in docs/operations.md")

// Every setting has its file key, flag (a secret: none), environment variable, a default
// that parses, and help; --help lists them all, and docs/operations.md
// shows the table.
func TestSettingsTableComplete(t *testing.T) {
	tb := (&cpSettings{}).table()
	require.NoError(t, tb.Check())
	var stdout bytes.Buffer
	require.Equal(t, settings.ExitOK, run(context.Background(), []string{"--help"}, &stdout, &bytes.Buffer{}, func(string) string { return "" }))
	require.NoError(t, tb.SyncDoc(filepath.Join("..", "docs", "operations.md"), *updateDocs))
	for _, s := range tb.Settings {
		require.Contains(t, stdout.String(), tb.EnvName(s), s.Key)
		if f := s.FlagName(); f != "" { // a secret has none: the process list would show it
			require.Contains(t, stdout.String(), "--"+f+" ", s.Key)
		}
	}
	require.Contains(t, stdout.String(), "--rotate-admin-token")
}

func TestRunExitCodes(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	require.NoError(t, os.WriteFile(bad, []byte("version: 1\nheartbeat_intervall: 1s\n"), 0o600))
	for _, tt := range []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout string
		wantStderr string
	}{
		{"help", []string{"--help"}, settings.ExitOK, "--heartbeat-interval", ""},
		{"help Go-style", []string{"-help"}, settings.ExitOK, "--heartbeat-interval", ""},
		{"version", []string{"--version"}, settings.ExitOK, "forlock-controlplane version", ""},
		{"version Go-style", []string{"-version"}, settings.ExitOK, "forlock-controlplane version", ""},
		{"unknown flag", []string{"--nope"}, settings.ExitUsage, "", "forlock-controlplane: unknown flag: --nope"},
		{"argument", []string{"stray"}, settings.ExitUsage, "", `unexpected argument "stray"`},
		{"bad config file", []string{"-config", bad}, settings.ExitUsage, "", "line 2: unknown key 'heartbeat_intervall' (did you mean heartbeat_interval?)"},
		{"bad setting", []string{"-listen=nope"}, settings.ExitUsage, "", `listen "nope": want host:port`},
		{"start-up failure", []string{"--data-dir", bad, "--listen", "127.0.0.1:0"}, settings.ExitFailure, "", "forlock-controlplane: "},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), tt.args, &stdout, &stderr, func(string) string { return "" })
			require.Equal(t, tt.wantCode, code, "stderr: %s", stderr.String())
			require.Contains(t, stdout.String(), tt.wantStdout)
			require.Contains(t, stderr.String(), tt.wantStderr)
		})
	}
}

// The alerting section reaches notify.Config, and a receiver that would
// get alerts in clear over the network is refused at start.
func TestAlertDeliverySettings(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "cp.yaml")
	require.NoError(t, os.WriteFile(file, []byte("version: 1\nalerting:\n  alertmanager_urls: [http://127.0.0.1:9093]\n  webhook_urls: [https://hooks.example/a]\n  webhook_token_file: hook.token\n  resend_interval: 30s\n"), 0o600))
	none := func(string) (string, bool) { return "", false }
	cfg, err := parseArgs([]string{"--config", file}, none, &bytes.Buffer{})
	require.NoError(t, err)
	require.Equal(t, []string{"http://127.0.0.1:9093"}, cfg.Notify.AlertmanagerURLs)
	require.Equal(t, []string{"https://hooks.example/a"}, cfg.Notify.WebhookURLs)
	require.Equal(t, filepath.Join(dir, "hook.token"), cfg.Notify.WebhookTokenFile, "relative to the config file")
	require.Equal(t, 30*time.Second, cfg.Notify.ResendInterval)

	_, err = parseArgs([]string{"--config", file, "--alerting-webhook-urls", "http://hooks.example/a"}, none, &bytes.Buffer{})
	require.ErrorContains(t, err, "webhook URL for hooks.example is plain http")
	_, err = parseArgs([]string{"--config", file, "--alerting-webhook-urls", "http://hooks.example/a", "--alerting-allow-insecure-http"}, none, &bytes.Buffer{})
	require.NoError(t, err)
}
