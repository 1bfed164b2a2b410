package checks

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/forlock/fleet/agent/internal/hostinfo"
	"github.com/forlock/fleet/agent/internal/tasks"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

const gib = 1 << 30

func TestEvaluateDisk(t *testing.T) {
	tests := []struct {
		name        string
		total, free uint64
		want        Status
		line        string
	}{
		{"guide example", 252 * gib, 160 * gib, OK, "disk OK 63% free (160 GiB of 252 GiB)"},
		{"decimals", 252 * gib, 818 * gib / 10, OK, "disk OK 32% free (81.8 GiB of 252 GiB)"},
		{"exactly 20% is OK", 100 * gib, 20 * gib, OK, "disk OK 20% free (20.0 GiB of 100 GiB)"},
		{"just under 20%", 1000, 199, Warn, "disk WARN 19% free (199 B of 1000 B)"},
		{"exactly 10% warns", 100 * gib, 10 * gib, Warn, "disk WARN 10% free (10.0 GiB of 100 GiB)"},
		{"9.99% is critical and says 9", 10000, 999, Critical, "disk CRITICAL 9% free (999 B of 9.8 KiB)"},
		{"full", 100 * gib, 0, Critical, "disk CRITICAL 0% free (0 B of 100 GiB)"},
		{"empty", 100 * gib, 100 * gib, OK, "disk OK 100% free (100 GiB of 100 GiB)"},
		{"no size", 0, 0, Unknown, "disk UNKNOWN the file system reports 0 bytes free of 0"},
		{"free above total", 1, 2, Unknown, "disk UNKNOWN the file system reports 2 bytes free of 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := EvaluateDisk(tt.total, tt.free)
			require.Equal(t, tt.want, r.Status)
			require.Equal(t, tt.line, r.String())
		})
	}
}

func TestEvaluateMemory(t *testing.T) {
	tests := []struct {
		name             string
		total, available uint64
		want             Status
		line             string
	}{
		{"half", 16 * gib, 8 * gib, OK, "memory OK 50% used (8.0 GiB of 16.0 GiB)"},
		{"exactly 80% is OK", 100, 20, OK, "memory OK 80% used (80 B of 100 B)"},
		{"80.1% warns and says 81", 1000, 199, Warn, "memory WARN 81% used (801 B of 1000 B)"},
		{"exactly 90% warns", 100, 10, Warn, "memory WARN 90% used (90 B of 100 B)"},
		{"above 90% is critical", 1000, 99, Critical, "memory CRITICAL 91% used (901 B of 1000 B)"},
		{"all used", 100, 0, Critical, "memory CRITICAL 100% used (100 B of 100 B)"},
		{"no total", 0, 0, Unknown, "memory UNKNOWN the kernel reports 0 bytes available of 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := EvaluateMemory(tt.total, tt.available)
			require.Equal(t, tt.want, r.Status)
			require.Equal(t, tt.line, r.String())
		})
	}
}

func TestBytes(t *testing.T) {
	for n, want := range map[uint64]string{
		0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 1536: "1.5 KiB", 102359: "100 KiB",
		1 << 20: "1.0 MiB", 252 * gib: "252 GiB", 1 << 40: "1.0 TiB", 1<<64 - 1: "16.0 EiB",
	} {
		require.Equal(t, want, Bytes(n), "%d", n)
	}
}

func TestSummarize(t *testing.T) {
	ok := Result{Name: "disk", Status: OK, Summary: "63% free"}
	warn := Result{Name: "memory", Status: Warn, Summary: "85% used"}
	crit := Result{Name: "disk", Status: Critical, Summary: "5% free"}
	unknown := Result{Name: "memory", Status: Unknown, Summary: "cannot read"}
	tests := []struct {
		name    string
		in      []Result
		msg     string
		wantErr string
	}{
		{"all ok", []Result{ok, ok}, "all 2 checks OK", ""},
		{"warning", []Result{ok, warn}, "1 of 2 checks OK; WARN: memory 85% used", ""},
		{"unknown", []Result{ok, unknown}, "1 of 2 checks OK; UNKNOWN: memory cannot read", ""},
		{"critical", []Result{crit, ok}, "", "CRITICAL: disk 5% free"},
		{"critical and warning", []Result{warn, crit}, "", "CRITICAL: disk 5% free; WARN: memory 85% used"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg, err := Summarize(tt.in)
			if tt.wantErr != "" {
				require.EqualError(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.msg, msg)
		})
	}
}

func TestHandler(t *testing.T) {
	disk := Disk{Dirs: []string{"/data"}, StatFS: func(string) (hostinfo.FileSystem, error) {
		return hostinfo.FileSystem{Total: 100 * gib, Free: 5 * gib}, nil
	}}
	mem := Memory{Read: func() (hostinfo.Memory, error) { return hostinfo.Memory{Total: 100, Available: 50}, nil }}
	var phases []string
	report := func(p *forlockv1.Progress) { phases = append(phases, p.GetPhase()) }
	var published *forlockv1.HealthReport

	h := Handler{Suite: &Suite{Host: []Check{disk, mem}}, Publish: func(r *forlockv1.HealthReport) { published = r }}
	res, err := h.Run(context.Background(), tasks.Assignment{}, report)
	require.EqualError(t, err, "CRITICAL: disk /data: 5% free (5.0 GiB of 100 GiB)")
	require.Equal(t, []string{"disk CRITICAL /data: 5% free (5.0 GiB of 100 GiB)", "memory OK 50% used (50 B of 100 B)"}, res.Details)
	require.Equal(t, []string{"running health checks"}, phases)
	require.Len(t, res.Health.GetChecks(), 2)
	require.Equal(t, forlockv1.CheckStatus_CHECK_STATUS_CRITICAL, res.Health.GetChecks()[0].GetStatus())
	require.Equal(t, "disk", res.Health.GetChecks()[0].GetName())
	require.Equal(t, "/data: 5% free (5.0 GiB of 100 GiB)", res.Health.GetChecks()[0].GetMessage())
	require.Len(t, res.Health.GetChecks()[0].GetMeasurements(), 1)
	require.Equal(t, "free_ratio", res.Health.GetChecks()[0].GetMeasurements()[0].GetName())
	require.InDelta(t, 0.05, res.Health.GetChecks()[0].GetMeasurements()[0].GetValue(), 1e-9)
	require.Equal(t, "/data", res.Health.GetChecks()[0].GetMeasurements()[0].GetSubject())
	require.Same(t, res.Health, published)

	broken := Disk{Dirs: []string{"/gone"}, StatFS: func(string) (hostinfo.FileSystem, error) { return hostinfo.FileSystem{}, errors.New("no such file") }}
	res, err = Handler{Suite: &Suite{Host: []Check{broken, Memory{Read: func() (hostinfo.Memory, error) { return hostinfo.Memory{Total: 1}, nil }}}}}.
		Run(context.Background(), tasks.Assignment{}, func(*forlockv1.Progress) {})
	require.NoError(t, err)
	require.Equal(t, "0 of 2 checks OK; UNKNOWN: disk cannot read the file system of /gone: no such file; UNKNOWN: memory the kernel does not report MemAvailable", res.Message)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = Handler{Suite: &Suite{Host: []Check{disk}}}.Run(ctx, tasks.Assignment{}, report)
	require.ErrorIs(t, err, context.Canceled)
}

func TestHostChecksOnThisHost(t *testing.T) {
	state, backup := t.TempDir(), t.TempDir()
	res, _ := Handler{Suite: &Suite{Host: HostChecks(HostConfig{StateDir: state, DockerMissing: "Docker is not configured",
		BackupDirs: []string{backup, "/nonexistent/backups"}, WALArchiveDir: backup})}}.Run(context.Background(), tasks.Assignment{}, func(*forlockv1.Progress) {})
	require.Len(t, res.Details, 6)
	require.Regexp(t, `^disk (OK|WARN|CRITICAL) `+state+`: \d+% free`, res.Details[0])
	require.Regexp(t, `^memory (OK|WARN|CRITICAL) \d+% used`, res.Details[1])
	require.Regexp(t, `^cpu (OK|WARN) \d+% used over the last 200ms( \(above the 85% alert threshold\))?$`, res.Details[2], "the first run samples twice")
	require.Equal(t, "disk/docker UNKNOWN cannot find Docker's data root: Docker is not configured", res.Details[3])
	require.Equal(t, "disk/backup UNKNOWN "+backup+" is on the file system of disk ("+state+"), judged there; "+
		"/nonexistent/backups does not exist: create it or fix backup_dirs", res.Details[4])
	require.Equal(t, "disk/wal-archive OK "+backup+" is on the file system of disk ("+state+"), judged there", res.Details[5])
}
