package checks

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/forlock/fleet/agent/internal/dockerrt"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

func TestMain(m *testing.M) {
	// After a failed dial, go-redis probes in the background until its
	// pool is closed, and notices the close only after its next 1 s sleep.
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("github.com/redis/go-redis/v9/internal/pool.(*ConnPool).tryDial"))
}

func TestEvaluateContainer(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	up := func(c dockerrt.Container) dockerrt.Container {
		c.Found, c.Name, c.State, c.StartedAt = true, c.Expected, "running", now.Add(-3*time.Hour-12*time.Minute)
		return c
	}
	tests := []struct {
		name string
		in   dockerrt.Container
		want Status
		line string
	}{
		{"running, no healthcheck", up(dockerrt.Container{Expected: "forlock-redis"}), OK,
			"container/forlock-redis OK running for 3h12m"},
		{"healthy with stats", up(dockerrt.Container{Expected: "forlock-api", Health: "healthy",
			Stats: &dockerrt.Stats{CPUPercent: 1.234, MemoryBytes: 45 << 20, MemoryLimitBytes: 512 << 20}}), OK,
			"container/forlock-api OK running for 3h12m, healthy, CPU 1.2%, memory 45.0 MiB of 512 MiB"},
		{"restarted, other name", func() dockerrt.Container {
			c := up(dockerrt.Container{Expected: "redis", RestartCount: 2, Stats: &dockerrt.Stats{MemoryBytes: 1 << 20}})
			c.Name = "node2-redis-1"
			return c
		}(), OK, "container/redis OK running for 3h12m, container node2-redis-1, 2 restarts, CPU 0.0%, memory 1.0 MiB"},
		{"starting", up(dockerrt.Container{Expected: "forlock-api", Health: "starting"}), Warn,
			"container/forlock-api WARN running, health check starting"},
		{"unhealthy", up(dockerrt.Container{Expected: "forlock-api", Health: "unhealthy"}), Critical,
			"container/forlock-api CRITICAL running but unhealthy"},
		{"exited", dockerrt.Container{Expected: "forlock-redis", Found: true, Name: "forlock-redis", State: "exited", ExitCode: 137, RestartCount: 1}, Critical,
			"container/forlock-redis CRITICAL exited (exit code 137), 1 restarts"},
		{"restarting", dockerrt.Container{Expected: "forlock-nginx", Found: true, Name: "forlock-nginx", State: "restarting"}, Critical,
			"container/forlock-nginx CRITICAL restarting"},
		{"paused", dockerrt.Container{Expected: "forlock-nginx", Found: true, Name: "forlock-nginx", State: "paused"}, Critical,
			"container/forlock-nginx CRITICAL paused"},
		{"missing", dockerrt.Container{Expected: "forlock-postgres"}, Critical,
			"container/forlock-postgres CRITICAL missing: no container matches it (found by names forlock-api, forlock-postgres)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := EvaluateContainer(tt.in, "names forlock-api, forlock-postgres", now)
			require.Equal(t, tt.want, r.Status)
			require.Equal(t, tt.line, r.String())
		})
	}
}

func TestUptime(t *testing.T) {
	for d, want := range map[time.Duration]string{
		-time.Second: "0s", 45 * time.Second: "45s", 12 * time.Minute: "12m", 3*time.Hour + 12*time.Minute: "3h12m",
		4*24*time.Hour + 3*time.Hour: "4d3h",
	} {
		require.Equal(t, want, Uptime(d))
	}
}

// fakeLister returns fixed containers or an error.
type fakeLister struct {
	cs  []dockerrt.Container
	err error
}

func (f fakeLister) Containers(context.Context) ([]dockerrt.Container, error) { return f.cs, f.err }
func (fakeLister) Describe() string                                           { return "names a, b" }

func TestContainersCheck(t *testing.T) {
	expected := []string{"a", "b"}
	rs, cs := Containers{Expected: expected}.Run(t.Context())
	require.Nil(t, cs)
	require.Equal(t, []Result{
		{Name: "container/a", Status: Unknown, Summary: "Docker is not configured: set docker_host"},
		{Name: "container/b", Status: Unknown, Summary: "Docker is not configured: set docker_host"},
	}, rs)

	rs, _ = Containers{Expected: expected, Lister: fakeLister{err: errors.New("docker engine at unix:///var/run/docker.sock: no such file")}}.Run(t.Context())
	require.Len(t, rs, 2)
	require.Equal(t, "container/b UNKNOWN cannot read the containers: docker engine at unix:///var/run/docker.sock: no such file: set docker_host if the engine listens elsewhere", rs[1].String())

	list := []dockerrt.Container{{Expected: "a", Found: true, Name: "a", State: "running"}, {Expected: "b"}}
	rs, cs = Containers{Expected: expected, Lister: fakeLister{cs: list}}.Run(t.Context())
	require.Equal(t, list, cs)
	require.Equal(t, OK, rs[0].Status)
	require.Equal(t, Critical, rs[1].Status)
}

// funcCheck is a check made of a function.
type funcCheck struct {
	name string
	run  func(ctx context.Context) Result
}

func (f funcCheck) Name() string                   { return f.name }
func (f funcCheck) Run(ctx context.Context) Result { return f.run(ctx) }

func sleeper(name string, d time.Duration, st Status) Check {
	return funcCheck{name, func(ctx context.Context) Result {
		select {
		case <-time.After(d):
			return Result{Name: name, Status: st, Summary: "slept"}
		case <-ctx.Done():
			return Result{Name: name, Status: Critical, Summary: "timed out"}
		}
	}}
}

func TestSuiteRunsConcurrentlyInOrder(t *testing.T) {
	s := &Suite{
		Host:       []Check{sleeper("disk", 300*time.Millisecond, OK), sleeper("memory", 300*time.Millisecond, Warn)},
		Containers: &Containers{Expected: []string{"x"}, Lister: fakeLister{cs: []dockerrt.Container{{Expected: "x"}}}},
		Services:   []Check{sleeper("api", 300*time.Millisecond, OK), sleeper("postgres", 300*time.Millisecond, OK), sleeper("redis", 300*time.Millisecond, OK)},
	}
	start := time.Now()
	rep := s.Run(t.Context())
	require.Less(t, time.Since(start), 1200*time.Millisecond, "five 300 ms checks run side by side")
	var names []string
	for _, r := range rep.Results {
		names = append(names, r.Name)
	}
	require.Equal(t, []string{"disk", "memory", "container/x", "api", "postgres", "redis"}, names)
	require.Len(t, rep.Containers, 1)
	require.WithinDuration(t, start, rep.CheckedAt, time.Second)
}

func TestSuiteTimeouts(t *testing.T) {
	release := make(chan struct{})
	stuck := funcCheck{"stuck", func(context.Context) Result { <-release; return Result{Name: "stuck"} }}
	s := &Suite{
		Timeout:  200 * time.Millisecond,
		Host:     []Check{sleeper("slow", time.Hour, OK)},
		Services: []Check{stuck, sleeper("quick", 0, OK)},
	}
	start := time.Now()
	rep := s.Run(t.Context())
	elapsed := time.Since(start)
	close(release)
	require.Less(t, elapsed, 2*time.Second)
	require.Equal(t, []Result{
		{Name: "slow", Status: Critical, Summary: "timed out"},
		{Name: "stuck", Status: Unknown, Summary: "the check did not finish within 200ms"},
		{Name: "quick", Status: OK, Summary: "slept"},
	}, rep.Results)
}

func TestReportProto(t *testing.T) {
	started := time.Date(2026, 5, 1, 9, 0, 0, 0, time.UTC)
	rep := Report{
		CheckedAt: started.Add(time.Hour),
		Results: []Result{
			{Name: "disk", Status: OK, Summary: "fine"},
			{Name: "api", Status: Critical, Summary: strings.Repeat("é", 3000)},
			{Name: "memory", Status: Unknown, Summary: "?"},
			{Name: "redis", Status: Warn},
		},
		Containers: []dockerrt.Container{
			{Expected: "forlock-api", Found: true, Name: "forlock-api", Service: "api", State: "running", Health: "healthy",
				RestartCount: 2, Image: "forlock/api:2", ImageDigest: "forlock/api@sha256:ab", StartedAt: started,
				Stats: &dockerrt.Stats{CPUPercent: 12.5, MemoryBytes: 100, MemoryLimitBytes: 200}},
			{Expected: "forlock-redis", Found: true, Name: "forlock-redis", State: "exited", StartedAt: started},
			{Expected: "forlock-nginx"},
		},
	}
	h := rep.Proto()
	require.Equal(t, started.Add(time.Hour), h.GetCheckedAt().AsTime())
	require.Len(t, h.GetChecks(), 4)
	require.Equal(t, []forlockv1.CheckStatus{forlockv1.CheckStatus_CHECK_STATUS_OK, forlockv1.CheckStatus_CHECK_STATUS_CRITICAL,
		forlockv1.CheckStatus_CHECK_STATUS_UNKNOWN, forlockv1.CheckStatus_CHECK_STATUS_WARN},
		[]forlockv1.CheckStatus{h.GetChecks()[0].GetStatus(), h.GetChecks()[1].GetStatus(), h.GetChecks()[2].GetStatus(), h.GetChecks()[3].GetStatus()})
	msg := h.GetChecks()[1].GetMessage()
	require.LessOrEqual(t, len(msg), maxMessageLen)
	require.True(t, strings.HasSuffix(msg, "é…"), "cut on a rune boundary")

	require.Len(t, h.GetContainers(), 2, "a missing container has no status")
	api := h.GetContainers()[0]
	require.Equal(t, "forlock-api", api.GetName())
	require.Equal(t, "api", api.GetService())
	require.Equal(t, "healthy", api.GetHealth())
	require.Equal(t, uint32(2), api.GetRestartCount())
	require.Equal(t, "forlock/api@sha256:ab", api.GetImageDigest())
	require.Equal(t, started, api.GetStartedAt().AsTime())
	require.InDelta(t, 12.5, api.GetCpuPercent(), 1e-9)
	require.Equal(t, uint64(100), api.GetMemoryBytes())
	require.Equal(t, uint64(200), api.GetMemoryLimitBytes())
	require.Nil(t, h.GetContainers()[1].GetStartedAt(), "an exited container has no start time")

	many := Report{}
	for range 100 {
		many.Results = append(many.Results, Result{Name: strings.Repeat("n", 300)})
		many.Containers = append(many.Containers, dockerrt.Container{Found: true, Name: strings.Repeat("c", 300), Image: strings.Repeat("i", 300)})
	}
	h = many.Proto()
	require.Len(t, h.GetChecks(), maxReportChecks)
	require.Len(t, h.GetContainers(), maxReportContainers)
	require.LessOrEqual(t, len(h.GetChecks()[0].GetName()), 256)
	c := h.GetContainers()[0]
	require.LessOrEqual(t, len(c.GetName())+len(c.GetImage()), 4*256)
}

func TestSummarizeClipsLongMessages(t *testing.T) {
	var rs []Result
	for range 100 {
		rs = append(rs, Result{Name: "container/x", Status: Critical, Summary: strings.Repeat("m", 100)})
	}
	_, err := Summarize(rs)
	require.LessOrEqual(t, len(err.Error()), maxMessageLen)
}

func TestMonitor(t *testing.T) {
	var runs int
	check := funcCheck{"count", func(context.Context) Result { runs++; return Result{Name: "count", Status: OK} }}
	m := NewMonitor(&Suite{Host: []Check{check}}, time.Hour)
	require.Nil(t, m.Latest())
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error)
	go func() { done <- m.Run(ctx) }()
	require.Eventually(t, func() bool { return m.Latest() != nil }, 5*time.Second, 10*time.Millisecond, "runs at once")
	first := m.Latest()
	require.Equal(t, "count", first.GetChecks()[0].GetName())

	m.SetInterval(time.Millisecond) // at least a second
	require.Eventually(t, func() bool { return m.Latest() != first }, 5*time.Second, 10*time.Millisecond, "runs again on the new interval")

	older := &forlockv1.HealthReport{CheckedAt: first.GetCheckedAt()}
	latest := m.Latest()
	m.Publish(older)
	require.Same(t, latest, m.Latest(), "an older report does not replace a newer one")
	cancel()
	require.NoError(t, <-done)
}

func TestMonitorSignalsChangedVerdicts(t *testing.T) {
	m := NewMonitor(&Suite{}, time.Hour)
	report := func(sec int64, st forlockv1.CheckStatus) *forlockv1.HealthReport {
		return &forlockv1.HealthReport{CheckedAt: timestamppb.New(time.Unix(sec, 0)),
			Checks: []*forlockv1.CheckResult{{Name: "redis", Status: st, Message: fmt.Sprint(sec)}}}
	}
	signalled := func() bool {
		select {
		case <-m.Changed():
			return true
		default:
			return false
		}
	}
	m.Publish(report(1, forlockv1.CheckStatus_CHECK_STATUS_OK))
	require.False(t, signalled(), "the first report is the heartbeat's anyway")
	m.Publish(report(2, forlockv1.CheckStatus_CHECK_STATUS_OK))
	require.False(t, signalled(), "same verdicts, other text: the next tick is soon enough")
	m.Publish(report(3, forlockv1.CheckStatus_CHECK_STATUS_CRITICAL))
	require.True(t, signalled(), "a status change")
	m.Publish(report(4, forlockv1.CheckStatus_CHECK_STATUS_OK))
	m.Publish(report(5, forlockv1.CheckStatus_CHECK_STATUS_CRITICAL))
	require.True(t, signalled())
	require.False(t, signalled(), "one pending signal, however many changes")
}
