package checks

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/forlock/fleet/agent/internal/hostinfo"
)

func TestEvaluateCPU(t *testing.T) {
	tests := []struct {
		name        string
		busy, total uint64
		want        Status
		line        string
		ratio       float64
	}{
		{"idle", 0, 1000, OK, "cpu OK 0% used over the last 10s", 0},
		{"exactly 70% is OK", 700, 1000, OK, "cpu OK 70% used over the last 10s", 0.7},
		{"70.1% warns and says 71", 701, 1000, Warn, "cpu WARN 71% used over the last 10s", 0.701},
		{"exactly 85% warns", 85, 100, Warn, "cpu WARN 85% used over the last 10s", 0.85},
		// Never CRITICAL: a busy interval fails no task; the control plane
		// alerts on the measurement held above 85 %.
		{"above 85% warns and names the alert threshold", 851, 1000, Warn, "cpu WARN 86% used over the last 10s (above the 85% alert threshold)", 0.851},
		{"all busy", 2000, 2000, Warn, "cpu WARN 100% used over the last 10s (above the 85% alert threshold)", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := EvaluateCPU(tt.busy, tt.total, 10*time.Second)
			require.Equal(t, tt.want, r.Status)
			require.Equal(t, tt.line, r.String())
			require.Len(t, r.Measurements, 1)
			require.Equal(t, "used_ratio", r.Measurements[0].Name)
			require.InDelta(t, tt.ratio, r.Measurements[0].Value, 1e-12)
		})
	}
	for _, bad := range [][2]uint64{{0, 0}, {2, 1}} {
		r := EvaluateCPU(bad[0], bad[1], time.Second)
		require.Equal(t, Unknown, r.Status)
		require.Equal(t, fmt.Sprintf("the kernel reports %d busy clock ticks of %d", bad[0], bad[1]), r.Summary)
		require.Empty(t, r.Measurements)
	}
}

func TestEvaluateDBConnections(t *testing.T) {
	tests := []struct {
		name                      string
		inUse, maxConns, reserved int
		want                      Status
		summary                   string
	}{
		{"few", 5, 100, 3, OK, "5 of 97 connections in use (6%; max_connections 100 less 3 reserved)"},
		{"exactly 80% is OK", 80, 103, 3, OK, "80 of 100 connections in use (80%; max_connections 103 less 3 reserved)"},
		{"above 80% warns", 81, 103, 3, Warn, "81 of 100 connections in use (81%; max_connections 103 less 3 reserved)"},
		{"exactly 90% warns", 90, 100, 0, Warn, "90 of 100 connections in use (90%; max_connections 100 less 0 reserved)"},
		{"above 90% is critical", 91, 100, 0, Critical, "91 of 100 connections in use (91%; max_connections 100 less 0 reserved)"},
		{"superusers past the pool", 99, 100, 3, Critical, "99 of 97 connections in use (103%; max_connections 100 less 3 reserved)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := EvaluateDBConnections(tt.inUse, tt.maxConns, tt.reserved)
			require.Equal(t, "postgres", r.Name)
			require.Equal(t, tt.want, r.Status, r.String())
			require.Equal(t, tt.summary, r.Summary)
			require.Equal(t, []Measurement{{Name: "connections", Value: float64(tt.inUse)}, {Name: "max_connections", Value: float64(tt.maxConns - tt.reserved)}},
				r.Measurements)
		})
	}
	for _, bad := range [][3]int{{1, 3, 3}, {-1, 100, 3}, {1, 100, -1}} {
		r := EvaluateDBConnections(bad[0], bad[1], bad[2])
		require.Equal(t, Unknown, r.Status, r.String())
		require.Empty(t, r.Measurements)
	}
}

func TestMeasurementsOfDiskMemoryAPI(t *testing.T) {
	require.Equal(t, []Measurement{{Name: "free_ratio", Value: 0.25}}, EvaluateDisk(4*gib, gib).Measurements)
	require.Empty(t, EvaluateDisk(0, 0).Measurements)
	require.Equal(t, []Measurement{{Name: "used_ratio", Value: 0.75}}, EvaluateMemory(4*gib, gib).Measurements)
	require.Empty(t, EvaluateMemory(0, 0).Measurements)

	probes := []Probe{{Path: APIEndpoints[0], Status: 200}}
	require.Equal(t, []Measurement{{Name: "p95_seconds", Value: 0.25}}, EvaluateAPI("https://x", true, probes, 250*time.Millisecond, 3).Measurements)
	require.Empty(t, EvaluateAPI("https://x", true, probes, 0, 0).Measurements, "no samples, no p95")
}

// fakeFS is a host's directories: each maps to its file system.
type fakeFS map[string]hostinfo.FileSystem

func (f fakeFS) statfs(dir string) (hostinfo.FileSystem, error) {
	if dir == "/broken" {
		return hostinfo.FileSystem{}, errors.New("statfs /broken: input/output error")
	}
	fsys, ok := f[dir]
	if !ok {
		return hostinfo.FileSystem{}, fmt.Errorf("statfs %s: %w", dir, fs.ErrNotExist)
	}
	return fsys, nil
}

func TestDiskCheck(t *testing.T) {
	root := hostinfo.FileSystem{Total: 100 * gib, Free: 15 * gib, Device: 1}
	backups := hostinfo.FileSystem{Total: 100 * gib, Free: 5 * gib, Device: 2}
	host := fakeFS{"/var/lib/forlock": root, "/var/lib/docker": root, "/srv/b1": backups, "/srv/b1/wal": backups, "/srv/b2": root}
	state := []JudgedDir{{Check: DiskState, Dir: "/var/lib/forlock"}}
	tests := []struct {
		name    string
		check   Disk
		want    Status
		summary string
		ms      []Measurement
	}{
		{"state dir", Disk{Setting: "state_dir", Dirs: []string{"/var/lib/forlock"}}, Warn,
			"/var/lib/forlock: 15% free (15.0 GiB of 100 GiB)", []Measurement{{Name: "free_ratio", Value: 0.15, Subject: "/var/lib/forlock"}}},
		{"docker on the state dir's file system is judged once", Disk{Check: DiskDocker, Setting: "Docker's data root", Judged: state,
			Locate: func(context.Context) (string, error) { return "/var/lib/docker", nil }}, OK,
			"/var/lib/docker is on the file system of disk (/var/lib/forlock), judged there", nil},
		{"docker unreachable", Disk{Check: DiskDocker, Setting: "Docker's data root", Judged: state,
			Locate: func(context.Context) (string, error) {
				return "", errors.New("docker engine at unix:///x: connection refused")
			}}, Unknown,
			"cannot find Docker's data root: docker engine at unix:///x: connection refused", nil},
		{"docker root not visible", Disk{Check: DiskDocker, Setting: "Docker's data root",
			Locate: func(context.Context) (string, error) { return "/data/docker", nil }}, Unknown,
			"/data/docker, Docker's data root, is not visible here: run the agent on that host, or mount it", nil},
		{"backups: the worst decides, each file system once", Disk{Check: DiskBackup, Setting: "backup_dirs", Judged: state,
			Dirs: []string{"/srv/b1", "/srv/b1/wal", "/srv/b2"}}, Critical,
			"/srv/b1: 5% free (5.0 GiB of 100 GiB); /srv/b1/wal is on the file system of disk/backup (/srv/b1), judged there; " +
				"/srv/b2 is on the file system of disk (/var/lib/forlock), judged there",
			[]Measurement{{Name: "free_ratio", Value: 0.05, Subject: "/srv/b1"}}},
		{"a missing backup dir names the setting", Disk{Check: DiskBackup, Setting: "backup_dirs", Dirs: []string{"/srv/b2", "/mnt/usb"}}, Unknown,
			"/srv/b2: 15% free (15.0 GiB of 100 GiB); /mnt/usb does not exist: create it or fix backup_dirs",
			[]Measurement{{Name: "free_ratio", Value: 0.15, Subject: "/srv/b2"}}},
		{"unreadable", Disk{Check: DiskWALArchive, Setting: "wal_archive_dir", Dirs: []string{"/broken"}}, Unknown,
			"cannot read the file system of /broken: statfs /broken: input/output error", nil},
		{"no directory", Disk{Check: DiskBackup, Setting: "backup_dirs"}, Unknown, "no directory to check: set backup_dirs", nil},
		{"an unreadable judged dir does not hide this one", Disk{Check: DiskBackup, Setting: "backup_dirs", Dirs: []string{"/srv/b1"},
			Judged: []JudgedDir{{Check: DiskState, Dir: "/gone"}}}, Critical,
			"/srv/b1: 5% free (5.0 GiB of 100 GiB)", []Measurement{{Name: "free_ratio", Value: 0.05, Subject: "/srv/b1"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.check.StatFS = host.statfs
			r := tt.check.Run(t.Context())
			require.Equal(t, tt.check.Name(), r.Name)
			require.Equal(t, tt.want, r.Status, r.String())
			require.Equal(t, tt.summary, r.Summary)
			require.InDeltaSlice(t, ratios(tt.ms), ratios(r.Measurements), 1e-12)
			for i := range tt.ms {
				require.Equal(t, tt.ms[i].Name, r.Measurements[i].Name)
				require.Equal(t, tt.ms[i].Subject, r.Measurements[i].Subject)
			}
		})
	}
}

func ratios(ms []Measurement) []float64 {
	out := make([]float64, len(ms))
	for i, m := range ms {
		out[i] = m.Value
	}
	return out
}

// cpuTicks replays CPU readings, one per call.
type cpuTicks struct {
	reads []hostinfo.CPUTimes
	err   error
	at    []time.Time
}

func (c *cpuTicks) read() (hostinfo.CPUTimes, error) {
	c.at = append(c.at, time.Now())
	if c.err != nil {
		return hostinfo.CPUTimes{}, c.err
	}
	t := c.reads[0]
	c.reads = c.reads[1:]
	return t, nil
}

func TestCPUCheck(t *testing.T) {
	ticks := &cpuTicks{reads: []hostinfo.CPUTimes{
		{Idle: 1000, Total: 2000},
		{Idle: 1030, Total: 2100}, // first run: 70 of 100 ticks busy
		{Idle: 1030, Total: 2200}, // all busy
		{Idle: 1020, Total: 2300}, // iowait went back: no idle time
		{Idle: 0, Total: 10},      // counters went back
		{Idle: 10, Total: 20},     // a clean delta again
	}}
	c := NewCPU(ticks.read)

	r := c.Run(t.Context())
	require.Regexp(t, `^cpu OK 70% used over the last \d+ms$`, r.String(), "exactly 70% is OK")
	require.Len(t, ticks.at, 2, "the first run reads twice")
	require.GreaterOrEqual(t, ticks.at[1].Sub(ticks.at[0]), cpuMinSample)

	r = c.Run(t.Context())
	require.Equal(t, Warn, r.Status, r.String())
	require.Equal(t, []Measurement{{Name: "used_ratio", Value: 1}}, r.Measurements)
	require.GreaterOrEqual(t, ticks.at[2].Sub(ticks.at[1]), cpuMinSample, "a run right after the last waits for a long enough interval")

	r = c.Run(t.Context())
	require.Equal(t, Warn, r.Status, r.String())
	require.Equal(t, []Measurement{{Name: "used_ratio", Value: 1}}, r.Measurements)

	r = c.Run(t.Context())
	require.Equal(t, Unknown, r.Status)
	require.Equal(t, "the CPU times went backwards (2300 clock ticks, then 10)", r.Summary)

	r = c.Run(t.Context())
	require.Regexp(t, `^cpu OK 0% used over the last \d+ms$`, r.String(), "after counters went back, the next delta counts")

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	fresh := NewCPU((&cpuTicks{reads: []hostinfo.CPUTimes{{Total: 1}}}).read)
	r = fresh.Run(ctx)
	require.Equal(t, Unknown, r.Status)
	require.Equal(t, "no time left to sample the CPU times: context canceled", r.Summary)

	r = NewCPU((&cpuTicks{err: errors.New("open /proc/stat: permission denied")}).read).Run(t.Context())
	require.Equal(t, "cpu UNKNOWN cannot read the CPU times: open /proc/stat: permission denied", r.String())
}
