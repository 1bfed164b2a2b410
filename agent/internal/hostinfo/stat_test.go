package hostinfo

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseStat(t *testing.T) {
	// A 2-CPU Debian 12 host's /proc/stat, shortened after the per-CPU lines.
	debian := "cpu  102873 7 50812 52804 905 0 923 11 40 2\n" +
		"cpu0 50573 0 24658 28374 129 0 361 0 0 0\n" +
		"cpu1 52300 7 26154 24429 776 0 562 11 40 2\n" +
		"intr 3721974 0 9 0 0 0 0 0 0 0 0 0 0 156 0 0 0\n" +
		"ctxt 7243152\nbtime 1733280000\nprocesses 21312\n"
	tests := []struct {
		name    string
		in      string
		want    CPUTimes
		wantErr string
	}{
		{"debian", debian, CPUTimes{Idle: 52804 + 905, Total: 102873 + 7 + 50812 + 52804 + 905 + 923 + 11}, ""},
		{"old kernel, four columns", "cpu 10 0 5 85\n", CPUTimes{Idle: 85, Total: 100}, ""},
		{"cpu line not first", "page 1 2\ncpu 1 2 3 4 5\n", CPUTimes{Idle: 9, Total: 15}, ""},
		{"no trailing newline", "cpu 1 1 1 1", CPUTimes{Idle: 1, Total: 4}, ""},
		{"only per-CPU lines", "cpu0 1 2 3 4\n", CPUTimes{}, "stat: no cpu line"},
		{"empty", "", CPUTimes{}, "stat: no cpu line"},
		{"too few values", "cpu 1 2 3\n", CPUTimes{}, "stat: cpu line has 3 values, want at least 4"},
		{"negative", "cpu 1 -2 3 4\n", CPUTimes{}, "stat: cpu value 2: "},
		{"not a number", "cpu 1 2 x 4\n", CPUTimes{}, "stat: cpu value 3: "},
		{"overflow", "cpu 9223372036854775807 1 0 0\n", CPUTimes{}, "stat: cpu times overflow"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseStat([]byte(tt.in))
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				require.Zero(t, got)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

func TestCPUTimesFromTree(t *testing.T) {
	root := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(root, "proc"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(root, "proc", "stat"), []byte("cpu 10 0 5 85 0 0 0 0 0 0\n"), 0o600))
	got, err := Collector{Root: root}.CPUTimes()
	require.NoError(t, err)
	require.Equal(t, CPUTimes{Idle: 85, Total: 100}, got)

	_, err = Collector{Root: t.TempDir()}.CPUTimes()
	require.ErrorIs(t, err, os.ErrNotExist)

	if runtime.GOOS == "linux" {
		got, err := Collector{}.CPUTimes()
		require.NoError(t, err, "this host's /proc/stat")
		require.Positive(t, got.Total)
		require.LessOrEqual(t, got.Idle, got.Total)
	}
}

func FuzzParseStat(f *testing.F) {
	f.Add([]byte("cpu  102873 7 50812 52804 905 0 923 11 40 2\ncpu0 1 2 3 4\n"))
	f.Add([]byte("cpu 10 0 5 85\n"))
	f.Add([]byte("cpu 18446744073709551615 1 1 1\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := ParseStat(data)
		if err != nil {
			require.Zero(t, got)
			return
		}
		require.LessOrEqual(t, got.Idle, got.Total)
	})
}
