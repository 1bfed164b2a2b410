package hostinfo

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
)

func TestParseOSRelease(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"debian", "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\n", "Debian GNU/Linux 12 (bookworm)"},
		{"unquoted", "PRETTY_NAME=Alpine\n", "Alpine"},
		{"single quotes are literal", `PRETTY_NAME='A \"b\"'`, `A \"b\"`},
		{"escapes", `PRETTY_NAME="say \"hi\" \\ \$HOME"`, `say "hi" \ $HOME`},
		{"name and version", "NAME=Foo\nVERSION=\"1.2 (x)\"\n", "Foo 1.2 (x)"},
		{"name only", "# comment\n\nNAME=Foo\n", "Foo"},
		{"empty pretty name falls back", "PRETTY_NAME=\"\"\nNAME=Foo\n", "Foo"},
		{"control characters dropped", "PRETTY_NAME=\"a\x1b[31mb\"", "a[31mb"},
		{"nothing", "garbage without equals\n", ""},
		{"empty", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, ParseOSRelease([]byte(tt.in)))
		})
	}
}

func TestParseUptime(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		wantErr string
	}{
		{"350735.47 234388.90\n", 350735*time.Second + 470*time.Millisecond, ""},
		{"12", 12 * time.Second, ""},
		{"", 0, "uptime: empty"},
		{"abc 1", 0, "invalid syntax"},
		{"-1 0", 0, "out of range"},
		{"NaN 0", 0, "out of range"},
		{"+Inf 0", 0, "out of range"},
		{"1e300 0", 0, "out of range"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseUptime([]byte(tt.in))
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.InDelta(t, tt.want.Seconds(), got.Seconds(), 1e-6)
		})
	}
}

func TestParseMeminfo(t *testing.T) {
	tests := []struct {
		name, in string
		want     Memory
		wantErr  string
	}{
		{"full", "MemTotal:       16318480 kB\nMemFree:  1 kB\nMemAvailable:    8000000 kB\n", Memory{16318480 * 1024, 8000000 * 1024}, ""},
		{"old kernel", "MemTotal: 1024 kB\n", Memory{1024 * 1024, 0}, ""},
		{"no unit", "MemTotal: 1024\n", Memory{1024, 0}, ""},
		{"missing total", "MemAvailable: 1 kB\n", Memory{}, "no MemTotal line"},
		{"bad unit", "MemTotal: 1 MB\n", Memory{}, `meminfo MemTotal: unexpected value "1 MB"`},
		{"bad number", "MemTotal: x kB\n", Memory{}, "invalid syntax"},
		{"overflow", "MemTotal: 18446744073709551615 kB\n", Memory{}, "overflows"},
		{"empty", "", Memory{}, "no MemTotal line"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseMeminfo([]byte(tt.in))
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

func TestCollectFromRoot(t *testing.T) {
	root := t.TempDir()
	write := func(rel, content string) {
		p := filepath.Join(root, rel)
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
	}
	write("usr/lib/os-release", "PRETTY_NAME=\"Test OS 1\"\n")
	write("proc/uptime", "100.5 1\n")
	write("proc/meminfo", "MemTotal: 2 kB\nMemAvailable: 1 kB\n")

	f := Collector{StateDir: root, AgentVersion: "v9", Root: root}.Collect()
	require.Equal(t, "Test OS 1", f.GetOs(), "falls back to /usr/lib/os-release")
	require.Equal(t, 100500*time.Millisecond, f.GetUptime().AsDuration())
	require.Equal(t, uint64(2048), f.GetMemoryTotalBytes())
	require.Equal(t, uint64(1024), f.GetMemoryAvailableBytes())
	require.Equal(t, runtime.GOARCH, f.GetArch())
	require.Equal(t, "v9", f.GetAgentVersion())
	if runtime.GOOS == "linux" {
		require.NotEmpty(t, f.GetKernel())
		require.Positive(t, f.GetDiskTotalBytes())
		require.LessOrEqual(t, f.GetDiskFreeBytes(), f.GetDiskTotalBytes())
	}

	empty := Collector{Root: t.TempDir()}.Collect()
	require.Empty(t, empty.GetOs(), "missing files leave facts empty")
	require.Nil(t, empty.GetUptime())
	require.Zero(t, empty.GetDiskTotalBytes())
}

func TestCollectRealHost(t *testing.T) {
	if testing.Short() {
		t.Skip("reads this host's /proc")
	}
	f := Collector{StateDir: t.TempDir()}.Collect()
	require.NotEmpty(t, f.GetHostname())
	require.Positive(t, f.GetMemoryTotalBytes())
	require.Positive(t, f.GetUptime().AsDuration())
}

func FuzzParseOSRelease(f *testing.F) {
	f.Add([]byte("PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n"))
	f.Add([]byte(`PRETTY_NAME='x' NAME="a\"b\\"`))
	f.Add([]byte("NAME=a\nVERSION=1\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s := ParseOSRelease(data)
		require.True(t, utf8.ValidString(s))
		for _, r := range s {
			require.False(t, r < ' ' || r == 0x7f, "control character %q in %q", r, s)
		}
	})
}

func FuzzParseUptime(f *testing.F) {
	f.Add([]byte("350735.47 234388.90\n"))
	f.Add([]byte("1e18"))
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := ParseUptime(data)
		if err == nil {
			require.GreaterOrEqual(t, d, time.Duration(0))
		}
	})
}

func FuzzParseMeminfo(f *testing.F) {
	f.Add([]byte("MemTotal:       16318480 kB\nMemAvailable:    8000000 kB\n"))
	f.Add([]byte("MemTotal: 18014398509481983 kB\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseMeminfo(data)
		if err != nil {
			require.Zero(t, m)
		}
	})
}
