package dockerrt

import (
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// byExpected indexes containers by their expected entry.
func byExpected(cs []Container) map[string]Container {
	m := make(map[string]Container, len(cs))
	for _, c := range cs {
		m[c.Expected] = c
	}
	return m
}

// waitFor polls the runtime until cond holds for the containers, or fails.
func waitFor(t *testing.T, rt *Runtime, what string, cond func(map[string]Container) bool) map[string]Container {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		cs, err := rt.Containers(t.Context())
		require.NoError(t, err)
		m := byExpected(cs)
		if cond(m) {
			return m
		}
		if time.Now().After(deadline) {
			require.Failf(t, "timed out", "waiting for %s; last: %+v", what, cs)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func TestContainersByNameOnRealEngine(t *testing.T) {
	e := newTestEngine(t)
	api := e.run(t, spec{name: "forlock-api", health: []string{"CMD", "/sleeper", "probe-ok"}, memory: 64 << 20})
	pg := e.run(t, spec{name: "forlock-postgres", args: []string{"burn"}})
	redis := e.run(t, spec{name: "forlock-redis", health: []string{"CMD", "/sleeper", "probe-fail"}})
	nginx := e.run(t, spec{name: "forlock-nginx", args: []string{"exit", "3"}, restart: 2})
	created := e.run(t, spec{name: "created", noStart: true})
	lookalike := e.run(t, spec{name: "forlock-api-2"}) // must not match forlock-api
	missing := e.prefix + "-missing"

	rt, err := New(Config{Names: []string{api, pg, redis, nginx, created, missing}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = rt.Close() })

	m := waitFor(t, rt, "healthy api, unhealthy redis, nginx exited after 2 restarts", func(m map[string]Container) bool {
		return m[api].Health == "healthy" && m[redis].Health == "unhealthy" &&
			m[nginx].State == "exited" && m[nginx].RestartCount == 2
	})
	cs, err := rt.Containers(t.Context())
	require.NoError(t, err)
	require.Len(t, cs, 6)
	for i, want := range []string{api, pg, redis, nginx, created, missing} {
		require.Equal(t, want, cs[i].Expected, "configured order")
	}

	a := m[api]
	require.True(t, a.Found)
	require.True(t, a.Running())
	require.Equal(t, api, a.Name)
	require.Equal(t, e.image, a.Image)
	require.Regexp(t, `^sha256:[0-9a-f]{64}$`, a.ImageID)
	require.Equal(t, a.ImageID, a.ImageDigest, "an imported image has no repository digest")
	require.WithinDuration(t, time.Now(), a.StartedAt, 2*time.Minute)
	require.NotNil(t, a.Stats, "stats error: %v", a.StatsErr)
	require.Equal(t, uint64(64<<20), a.Stats.MemoryLimitBytes)
	require.NotZero(t, a.Stats.MemoryBytes)
	require.NotEqual(t, lookalike, a.Name)

	p := m[pg]
	require.True(t, p.Running())
	require.Empty(t, p.Health, "no healthcheck")
	require.NotNil(t, p.Stats, "stats error: %v", p.StatsErr)
	require.Greater(t, p.Stats.CPUPercent, 10.0, "a busy loop shows CPU use")
	require.Zero(t, p.Stats.MemoryLimitBytes, "no memory limit")

	require.Equal(t, "running", m[redis].State)
	require.Equal(t, "unhealthy", m[redis].Health)

	n := m[nginx]
	require.Equal(t, 3, n.ExitCode)
	require.Nil(t, n.Stats)
	require.Equal(t, "created", m[created].State)
	require.True(t, m[created].StartedAt.IsZero())

	require.False(t, m[missing].Found)
	require.Empty(t, m[missing].State)
}

func TestContainersByComposeProjectOnRealEngine(t *testing.T) {
	e := newTestEngine(t)
	project := e.prefix
	compose := func(service string) map[string]string {
		return map[string]string{ProjectLabel: project, ServiceLabel: service}
	}
	e.run(t, spec{name: "api", labels: compose("api")})
	e.run(t, spec{name: "forlock-redis", labels: compose("redis")})
	e.run(t, spec{name: "extra", labels: compose("worker")})
	e.run(t, spec{name: "postgres"}) // right name, other project: not found

	rt, err := New(Config{Project: project, Names: []string{"api", e.prefix + "-forlock-redis", "postgres"}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = rt.Close() })
	require.Equal(t, `compose project "`+project+`"`, rt.Describe())
	cs, err := rt.Containers(t.Context())
	require.NoError(t, err)
	require.Len(t, cs, 4)

	require.Equal(t, "api", cs[0].Expected)
	require.Equal(t, e.prefix+"-api", cs[0].Name, "matched by service")
	require.Equal(t, "api", cs[0].Service)
	require.Equal(t, project, cs[0].Project)
	require.Equal(t, "redis", cs[1].Service, "matched by container name")
	require.False(t, cs[2].Found, "postgres is not in the project")
	require.Equal(t, e.prefix+"-extra", cs[3].Name, "the project's other containers follow")
	require.Equal(t, "worker", cs[3].Service)
}

func TestAPIVersionOnRealEngine(t *testing.T) {
	e := newTestEngine(t)
	ping, err := e.cli.Ping(t.Context(), client.PingOptions{})
	require.NoError(t, err)
	t.Logf("engine API version %s; client supports %s to %s", ping.APIVersion, client.MinAPIVersion, client.MaxAPIVersion)

	rt, err := New(Config{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = rt.Close() })
	v, err := rt.Ping(t.Context())
	require.NoError(t, err)
	if ping.APIVersion < client.MaxAPIVersion {
		require.Equal(t, ping.APIVersion, v, "negotiated down to the engine's version")
	}
	_, err = rt.Containers(t.Context())
	require.NoError(t, err)

	fixed, err := New(Config{APIVersion: ping.APIVersion})
	require.NoError(t, err)
	t.Cleanup(func() { _ = fixed.Close() })
	_, err = fixed.Containers(t.Context())
	require.NoError(t, err)

	if ping.APIVersion < client.MaxAPIVersion {
		tooNew, err := New(Config{APIVersion: client.MaxAPIVersion})
		require.NoError(t, err)
		t.Cleanup(func() { _ = tooNew.Close() })
		_, err = tooNew.Containers(t.Context())
		require.ErrorContains(t, err, "is too new", "a fixed version above the engine's is refused")
	}
}

func TestUnreachableEngine(t *testing.T) {
	rt, err := New(Config{Host: "unix://" + t.TempDir() + "/docker.sock"})
	require.NoError(t, err)
	t.Cleanup(func() { _ = rt.Close() })
	_, err = rt.Containers(t.Context())
	require.ErrorContains(t, err, "docker engine at unix://")
}

func TestNewRejectsBadNames(t *testing.T) {
	_, err := New(Config{Names: []string{"forlock-api", "has space"}})
	require.EqualError(t, err, `container name "has space": want a container or compose service name`)
	_, err = New(Config{Host: "no-scheme"})
	require.ErrorContains(t, err, "docker engine client")
}

func TestMatch(t *testing.T) {
	items := []container.Summary{
		{ID: "1", Names: []string{"/forlock-api"}},
		{ID: "2", Names: []string{"/node2-forlock-redis"}, Labels: map[string]string{ServiceLabel: "forlock-redis"}},
		{ID: "3", Names: []string{"/other"}},
	}
	got, err := match([]string{"forlock-api", "forlock-redis", "forlock-nginx"}, true, items)
	require.NoError(t, err)
	require.Equal(t, []Container{
		{Expected: "forlock-api", Found: true, ID: "1", Name: "forlock-api"},
		{Expected: "forlock-redis", Found: true, ID: "2", Name: "node2-forlock-redis"},
		{Expected: "forlock-nginx"},
		{Expected: "other", Found: true, ID: "3", Name: "other"},
	}, got)

	got, err = match([]string{"forlock-api"}, false, items)
	require.NoError(t, err)
	require.Len(t, got, 1, "only project mode adds the others")

	dup := append(items, container.Summary{ID: "4", Names: []string{"/x"}, Labels: map[string]string{ServiceLabel: "forlock-api"}})
	_, err = match([]string{"forlock-api"}, true, dup)
	require.EqualError(t, err, `expected container "forlock-api" matches both forlock-api and x: configure container names that tell them apart`)
}

func TestRepoDigest(t *testing.T) {
	id := "sha256:abc"
	tests := []struct {
		ref     string
		digests []string
		want    string
	}{
		{"forlock/api:2.1", []string{"other/x@sha256:1", "forlock/api@sha256:2"}, "forlock/api@sha256:2"},
		{"registry:5000/forlock/api:2.1", []string{"registry:5000/forlock/api@sha256:3"}, "registry:5000/forlock/api@sha256:3"},
		{"registry:5000/forlock/api", []string{"registry:5000/forlock/api@sha256:3"}, "registry:5000/forlock/api@sha256:3"},
		{"forlock/api:2.1", []string{"mirror/api@sha256:4"}, "mirror/api@sha256:4"},
		{"forlock/api:2.1", nil, id},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, repoDigest(tt.ref, tt.digests, id), tt.ref)
	}
}

func TestCPUPercent(t *testing.T) {
	s := func(total, prevTotal, sys, prevSys uint64, cpus uint32, percpu int) container.StatsResponse {
		var r container.StatsResponse
		r.CPUStats.CPUUsage.TotalUsage, r.PreCPUStats.CPUUsage.TotalUsage = total, prevTotal
		r.CPUStats.SystemUsage, r.PreCPUStats.SystemUsage = sys, prevSys
		r.CPUStats.OnlineCPUs = cpus
		r.CPUStats.CPUUsage.PercpuUsage = make([]uint64, percpu)
		return r
	}
	tests := []struct {
		name string
		in   container.StatsResponse
		want float64
	}{
		{"one of two cores busy", s(2e9, 1e9, 4e9, 2e9, 2, 0), 100},
		{"quarter core on four", s(1.25e9, 1e9, 5e9, 1e9, 4, 0), 25},
		{"percpu when online cpus missing", s(2e9, 1e9, 4e9, 2e9, 0, 2), 100},
		{"no previous sample", s(2e9, 0, 4e9, 0, 2, 0), 0},
		{"idle", s(1e9, 1e9, 4e9, 2e9, 2, 0), 0},
		{"counter reset", s(1e9, 2e9, 4e9, 2e9, 2, 0), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.InDelta(t, tt.want, CPUPercent(tt.in), 1e-9)
		})
	}
}

func TestMemoryUsage(t *testing.T) {
	require.Equal(t, uint64(70), MemoryUsage(container.MemoryStats{Usage: 100, Stats: map[string]uint64{"total_inactive_file": 30}}))
	require.Equal(t, uint64(60), MemoryUsage(container.MemoryStats{Usage: 100, Stats: map[string]uint64{"inactive_file": 40}}))
	require.Equal(t, uint64(100), MemoryUsage(container.MemoryStats{Usage: 100, Stats: map[string]uint64{"inactive_file": 400}}))
	require.Equal(t, uint64(100), MemoryUsage(container.MemoryStats{Usage: 100}))
}
