package controlplane

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestLimitsSettings(t *testing.T) {
	none := func(string) (string, bool) { return "", false }
	cfg, err := parseArgs(nil, none, &bytes.Buffer{})
	require.NoError(t, err)
	require.Equal(t, Limits{AuthFailures: 20, AuthFailureWindow: time.Minute, AuthBlock: time.Minute, TrackedAddresses: 16384,
		UnauthConnsPerAddress: 32, HandshakeTimeout: 10 * time.Second, IdleConnTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10}, cfg.Limits)

	file := filepath.Join(t.TempDir(), "cp.yaml")
	require.NoError(t, os.WriteFile(file, []byte(`version: 1
limits:
  auth_failures: 5
  auth_failure_window: 30s
  auth_block: 5m
  tracked_addresses: 1000
  unauthenticated_conns_per_address: 8
  handshake_timeout: 3s
  idle_conn_timeout: 1m
  max_header_bytes: 16384
`), 0o600))
	cfg, err = parseArgs([]string{"--config", file, "--auth-failures", "7", "--handshake-timeout", "4s"}, none, &bytes.Buffer{})
	require.NoError(t, err)
	require.Equal(t, Limits{AuthFailures: 7, AuthFailureWindow: 30 * time.Second, AuthBlock: 5 * time.Minute, TrackedAddresses: 1000,
		UnauthConnsPerAddress: 8, HandshakeTimeout: 4 * time.Second, IdleConnTimeout: time.Minute, MaxHeaderBytes: 16384}, cfg.Limits,
		"flags win over the file")

	for _, tt := range []struct{ args []string }{
		{[]string{"--max-header-bytes", "100"}},
		{[]string{"--auth-failures", "-1"}},
		{[]string{"--unauth-conns-per-address", "1000000"}},
		{[]string{"--handshake-timeout", "1h"}},
	} {
		_, err := parseArgs(tt.args, none, &bytes.Buffer{})
		require.ErrorContains(t, err, "limits: ", "%v", tt.args)
	}
	_, err = ParseConfigFile([]byte("version: 1\nlimits:\n  auth_block: soon\n"))
	require.ErrorContains(t, err, `limits auth_block "soon": want a duration`)
}

func FuzzParseConfigFileLimits(f *testing.F) {
	f.Add([]byte("version: 1\nlimits:\n  auth_failures: 5\n  auth_block: 5m\n  handshake_timeout: 3s\n"))
	f.Add([]byte("version: 1\nlimits:\n  max_header_bytes: -1\n  idle_conn_timeout: 0s\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		fc, err := ParseConfigFile(data)
		if err != nil {
			return
		}
		l, err := fc.Limits.limits()
		if err != nil {
			t.Fatalf("ParseConfigFile accepted limits that do not convert: %v", err)
		}
		l.setDefaults()
		if l.validate() == nil && (l.AuthFailures < 1 || l.MaxHeaderBytes < 8<<10 || l.HandshakeTimeout <= 0) {
			t.Fatalf("limits %+v validated", l)
		}
	})
}
