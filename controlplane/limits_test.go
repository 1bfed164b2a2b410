package controlplane

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestParseBytes(t *testing.T) {
	for in, want := range map[string]int64{"0": 0, "4096": 4096, "512KiB": 512 << 10, "64MiB": 64 << 20, "2 GiB": 2 << 30, "10B": 10} {
		got, err := parseBytes(in)
		require.NoError(t, err, in)
		require.Equal(t, want, got, in)
	}
	for _, in := range []string{"", "-1", "64MB", "1.5GiB", "lots"} {
		_, err := parseBytes(in)
		require.ErrorContains(t, err, "want bytes or a number with KiB, MiB or GiB", in)
	}
	r, err := parseReserve("0")
	require.NoError(t, err)
	require.Equal(t, int64(-1), r, `"0" keeps no reserve`)
	r, err = parseReserve("")
	require.NoError(t, err)
	require.Zero(t, r, "unset is the default")
}

func TestLimitsFromFileAndFlags(t *testing.T) {
	file := filepath.Join(t.TempDir(), "cp.yaml")
	require.NoError(t, os.WriteFile(file, []byte("version: 1\nlimits:\n  disk_reserve: 128MiB\n  progress_event_interval: 2s\n  job_events_max: 50\n  agent_control_rate: 3\n"), 0o600))
	none := func(string) (string, bool) { return "", false }
	cfg, err := parseArgs([]string{"--config", file, "--job-events-per-task", "7", "--agent-control-rate", "4"}, none, &bytes.Buffer{})
	require.NoError(t, err)
	require.Equal(t, Limits{DiskReserve: 128 << 20, ProgressEventInterval: 2 * time.Second, JobEventsMax: 50, JobEventsPerTask: 7, AgentControlRate: 4}, cfg.Limits)

	cfg, err = parseArgs([]string{"--config", file, "--disk-reserve", "1MiB"}, none, &bytes.Buffer{})
	require.NoError(t, err)
	require.Equal(t, int64(1<<20), cfg.Limits.DiskReserve, "the flag beats the file")

	_, err = parseArgs([]string{"--disk-reserve", "lots"}, none, &bytes.Buffer{})
	require.ErrorContains(t, err, `disk reserve: size "lots"`)
	_, err = parseArgs([]string{"--progress-message-max", "9000"}, none, &bytes.Buffer{})
	require.ErrorContains(t, err, "progress message max 9000")
	_, err = ParseConfigFile([]byte("version: 1\nlimits:\n  progress_event_interval: often\n"))
	require.ErrorContains(t, err, "progress_event_interval")
}
