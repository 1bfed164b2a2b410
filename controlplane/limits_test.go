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
	_, err = parseFile([]byte("version: 1\nlimits:\n  auth_block: soon\n"))
	require.ErrorContains(t, err, `line 3: limits.auth_block: "soon" is not a duration`)
}

func FuzzParseConfigFileLimits(f *testing.F) {
	f.Add([]byte("version: 1\nlimits:\n  auth_failures: 5\n  auth_block: 5m\n  handshake_timeout: 3s\n"))
	f.Add([]byte("version: 1\nlimits:\n  max_header_bytes: -1\n  idle_conn_timeout: 0s\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := parseFile(data)
		if err != nil {
			return
		}
		l := st.cfg.Limits
		l.setDefaults()
		if l.validate() == nil && (l.AuthFailures < 1 || l.MaxHeaderBytes < 8<<10 || l.HandshakeTimeout <= 0) {
			t.Fatalf("limits %+v validated", l)
		}
	})
}

func TestParseReserve(t *testing.T) {
	r, err := parseReserve("0")
	require.NoError(t, err)
	require.Equal(t, int64(-1), r, `"0" keeps no reserve`)
	r, err = parseReserve("2 GiB")
	require.NoError(t, err)
	require.Equal(t, int64(2<<30), r)
	_, err = parseReserve("")
	require.ErrorContains(t, err, "want bytes or a number with KiB, MiB or GiB")
	cfg, err := parseArgs(nil, func(string) (string, bool) { return "", false }, &bytes.Buffer{})
	require.NoError(t, err)
	require.Zero(t, cfg.Limits.DiskReserve, "unset is the default")
}

func TestLimitsFromFileAndFlags(t *testing.T) {
	file := filepath.Join(t.TempDir(), "cp.yaml")
	require.NoError(t, os.WriteFile(file, []byte("version: 1\nlimits:\n  disk_reserve: 128MiB\n  progress_event_interval: 2s\n  job_events_max: 50\n  agent_control_rate: 3\n"), 0o600))
	none := func(string) (string, bool) { return "", false }
	cfg, err := parseArgs([]string{"--config", file, "--job-events-per-task", "7", "--agent-control-rate", "4"}, none, &bytes.Buffer{})
	require.NoError(t, err)
	want := Limits{DiskReserve: 128 << 20, ProgressEventInterval: 2 * time.Second, JobEventsMax: 50, JobEventsPerTask: 7, AgentControlRate: 4}
	want.setDefaults()
	require.Equal(t, want, cfg.Limits)

	cfg, err = parseArgs([]string{"--config", file, "--disk-reserve", "1MiB"}, none, &bytes.Buffer{})
	require.NoError(t, err)
	require.Equal(t, int64(1<<20), cfg.Limits.DiskReserve, "the flag beats the file")

	_, err = parseArgs([]string{"--disk-reserve", "lots"}, none, &bytes.Buffer{})
	require.ErrorContains(t, err, `disk reserve: size "lots"`)
	_, err = parseArgs([]string{"--progress-message-max", "9000"}, none, &bytes.Buffer{})
	require.ErrorContains(t, err, "progress message max 9000")
	_, err = parseFile([]byte("version: 1\nlimits:\n  progress_event_interval: often\n"))
	require.ErrorContains(t, err, "progress_event_interval")
}
