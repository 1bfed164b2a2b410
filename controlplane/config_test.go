package controlplane

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestParseConfigFile(t *testing.T) {
	fc, err := ParseConfigFile([]byte("version: 1\ndata_dir: /d\nlisten: 127.0.0.1:9\nadvertise_names: [cp.example.com]\nheartbeat_interval: 5s\n"))
	require.NoError(t, err)
	require.Equal(t, "/d", fc.DataDir)
	require.Equal(t, []string{"cp.example.com"}, fc.AdvertiseNames)

	for name, tc := range map[string]struct{ in, msg string }{
		"no version":    {"listen: :1\n", "version 0 not supported"},
		"future":        {"version: 2\n", "version 2 not supported"},
		"unknown field": {"version: 1\nlisen: :1\n", "field lisen not found"},
		"bad duration":  {"version: 1\nheartbeat_interval: often\n", "heartbeat_interval"},
		"bad level":     {"version: 1\nlog_level: loud\n", "log_level"},
		"not yaml":      {"version: [1\n", "config file"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ParseConfigFile([]byte(tc.in))
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
	f.Fuzz(func(t *testing.T, data []byte) {
		fc, err := ParseConfigFile(data)
		if err != nil {
			return
		}
		if fc.Version != 1 {
			t.Fatalf("accepted version %d", fc.Version)
		}
	})
}

func TestExampleConfigParses(t *testing.T) {
	fc, err := LoadConfigFile(filepath.Join("..", "deploy", "examples", "controlplane.yaml"))
	require.NoError(t, err, "deploy/examples/controlplane.yaml must stay valid")
	require.Equal(t, ":7443", fc.Listen)
}
