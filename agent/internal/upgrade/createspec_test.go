package upgrade

import (
	"encoding/json"
	"net/netip"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/image"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"
	"github.com/stretchr/testify/require"
)

const oldID = "4f1c2a9b8e7d6c5b4a39281706f5e4d3c2b1a0f9e8d7c6b5a4938271605f4e3d"

func mustPort(t *testing.T, s string) network.Port {
	t.Helper()
	p, err := network.ParsePort(s)
	require.NoError(t, err)
	return p
}

// apiRelease is an API container as docker compose creates it: its
// configuration merged with its image's.
func apiRelease(t *testing.T) ServiceRelease {
	t.Helper()
	hc := &container.HealthConfig{Test: []string{"CMD", "forlockapi", "healthcheck"}, Interval: 3 * time.Second}
	p8080 := mustPort(t, "8080/tcp")
	p443 := mustPort(t, "443/tcp")
	return ServiceRelease{
		Service: "api", Container: "n1-api", ContainerID: oldID,
		Image: "127.0.0.1:5000/forlock/api:v1", ImageID: "sha256:" + oldID,
		Config: &container.Config{
			Hostname:     "api",
			User:         "65534:65534",
			Env:          []string{"DATABASE_URL=postgres://x", "PATH=/usr/bin", "FORLOCK_API_VERSION=v1", "LISTEN_ADDR=:8080"},
			Cmd:          []string{"forlockapi", "serve"},
			Healthcheck:  hc,
			Image:        "127.0.0.1:5000/forlock/api:v1",
			Labels:       map[string]string{"com.docker.compose.service": "api", "org.forlock.test.release": "v1"},
			ExposedPorts: network.PortSet{p8080: {}},
			Volumes:      map[string]struct{}{"/cache": {}},
		},
		HostConfig: &container.HostConfig{
			NetworkMode:   "n1_default",
			RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyUnlessStopped},
			Binds:         []string{"n1_tls:/etc/tls:rw"},
			PortBindings:  network.PortMap{p443: {{HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: ""}}},
		},
		Networking: &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{
			"n1_default": {Aliases: []string{"api"}},
			"n1_extra":   {Aliases: []string{"api-extra"}},
		}},
		Mounts: []container.MountPoint{
			{Type: mount.TypeVolume, Name: "n1_tls", Destination: "/etc/tls", RW: true},
			{Type: mount.TypeVolume, Name: "3b1a9c", Destination: "/cache", RW: true},
		},
		ImageDefaults: &ImageDefaults{
			Env:          []string{"PATH=/usr/bin", "FORLOCK_API_VERSION=v1", "LISTEN_ADDR=:8080"},
			Labels:       map[string]string{"org.forlock.test.release": "v1"},
			Cmd:          []string{"forlockapi", "serve"},
			Healthcheck:  hc,
			User:         "65534:65534",
			ExposedPorts: []string{"8080/tcp"},
			Volumes:      []string{"/cache"},
		},
	}
}

func TestCreateSpec(t *testing.T) {
	src := apiRelease(t)
	running := network.PortMap{mustPort(t, "443/tcp"): {{HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: "40443"}}}
	c, err := createSpec(src, "127.0.0.1:5000/forlock/api:v2", running)
	require.NoError(t, err)
	cfg, hc := c.spec.Config, c.spec.HostConfig

	require.Equal(t, "127.0.0.1:5000/forlock/api:v2", cfg.Image)
	require.Equal(t, "api", cfg.Hostname, "an explicit hostname is kept")
	require.Equal(t, []string{"DATABASE_URL=postgres://x"}, cfg.Env, "only the container's own environment")
	require.Equal(t, map[string]string{"com.docker.compose.service": "api"}, cfg.Labels)
	require.Nil(t, cfg.Cmd)
	require.Nil(t, cfg.Healthcheck)
	require.Empty(t, cfg.User)
	require.Empty(t, cfg.ExposedPorts)
	require.Empty(t, cfg.Volumes)

	require.Equal(t, container.RestartPolicyUnlessStopped, hc.RestartPolicy.Name)
	require.Equal(t, []string{"n1_tls:/etc/tls:rw"}, hc.Binds)
	require.Equal(t, []mount.Mount{{Type: mount.TypeVolume, Source: "3b1a9c", Target: "/cache"}}, hc.Mounts, "the anonymous volume is reused")
	require.Equal(t, "40443", hc.PortBindings[mustPort(t, "443/tcp")][0].HostPort, "the port the engine picked is kept")

	require.Len(t, c.spec.Networking.EndpointsConfig, 1, "old engines take one network at create")
	require.Equal(t, []string{"api"}, c.spec.Networking.EndpointsConfig["n1_default"].Aliases)
	require.Equal(t, []string{"api-extra"}, c.connect["n1_extra"].Aliases)

	// The source is not modified.
	require.Len(t, src.Config.Env, 4)
	require.Empty(t, src.HostConfig.Mounts)
	require.Empty(t, src.HostConfig.PortBindings[mustPort(t, "443/tcp")][0].HostPort)
}

func TestDropImageDefaults(t *testing.T) {
	for _, tc := range []struct {
		name           string
		cfg            container.Config
		d              ImageDefaults
		wantEntrypoint []string
		wantCmd        []string
		wantHostname   string
	}{
		{
			name: "image entrypoint and command",
			cfg:  container.Config{Entrypoint: []string{"/entry"}, Cmd: []string{"postgres"}},
			d:    ImageDefaults{Entrypoint: []string{"/entry"}, Cmd: []string{"postgres"}},
		},
		{
			name:    "own command",
			cfg:     container.Config{Entrypoint: []string{"/entry"}, Cmd: []string{"postgres", "-c", "x=1"}},
			d:       ImageDefaults{Entrypoint: []string{"/entry"}, Cmd: []string{"postgres"}},
			wantCmd: []string{"postgres", "-c", "x=1"},
		},
		{
			// Without the entrypoint the engine would not take the image's
			// command, so both stay.
			name:           "own entrypoint keeps the command",
			cfg:            container.Config{Entrypoint: []string{"/mine"}, Cmd: []string{"postgres"}},
			d:              ImageDefaults{Entrypoint: []string{"/entry"}, Cmd: []string{"postgres"}},
			wantEntrypoint: []string{"/mine"},
			wantCmd:        []string{"postgres"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			dropImageDefaults(&cfg, &tc.d)
			require.Equal(t, tc.wantEntrypoint, cfg.Entrypoint)
			require.Equal(t, tc.wantCmd, cfg.Cmd)
		})
	}
}

func TestCreateSpecDefaultHostname(t *testing.T) {
	src := apiRelease(t)
	src.Config.Hostname = oldID[:12]
	c, err := createSpec(src, "x/api:v2", nil)
	require.NoError(t, err)
	require.Empty(t, c.spec.Config.Hostname, "the old container's ID as hostname is not copied")
	require.Empty(t, c.spec.HostConfig.PortBindings[mustPort(t, "443/tcp")][0].HostPort, "not running: left to the engine")
}

func TestEndpointConfigDropsShortID(t *testing.T) {
	ep := endpointConfig(&network.EndpointSettings{
		Aliases: []string{"api", oldID[:12]}, IPAddress: netip.MustParseAddr("172.18.0.4"), EndpointID: "e1", NetworkID: "n1",
	}, oldID)
	require.Equal(t, &network.EndpointSettings{Aliases: []string{"api"}}, ep)
}

func TestReleaseJSON(t *testing.T) {
	rel := Release{RecordedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Services: []ServiceRelease{apiRelease(t)}}
	b, err := json.Marshal(rel)
	require.NoError(t, err)
	var back Release
	require.NoError(t, json.Unmarshal(b, &back))
	require.Equal(t, rel, back)
	sr, ok := back.Service("api")
	require.True(t, ok)
	require.Equal(t, "n1-api", sr.Container)
	_, ok = back.Service("nginx")
	require.False(t, ok)
	require.Equal(t, map[string]string{"api": "sha256:" + oldID}, back.Images())
}

func TestRefs(t *testing.T) {
	d := "sha256:" + oldID
	for _, tc := range []struct{ ref, target, repo, want string }{
		{"127.0.0.1:5000/forlock/api:v1", "v2", "127.0.0.1:5000/forlock/api", "127.0.0.1:5000/forlock/api:v2"},
		{"127.0.0.1:5000/forlock/api", "v2", "127.0.0.1:5000/forlock/api", "127.0.0.1:5000/forlock/api:v2"},
		{"localhost:5000/api@" + d, "1.4.0", "localhost:5000/api", "localhost:5000/api:1.4.0"},
		{"forlock/api:v1", d, "forlock/api", "forlock/api@" + d},
		{"postgres", "15", "postgres", "postgres:15"},
	} {
		t.Run(tc.ref, func(t *testing.T) {
			require.Equal(t, tc.repo, repository(tc.ref))
			require.Equal(t, tc.want, withTarget(tc.ref, tc.target))
		})
	}
	for _, ok := range []string{"v2", "1.4.0", "latest", "v2_rc-1", d} {
		require.NoError(t, checkTarget(ok), ok)
	}
	for _, bad := range []string{"", "-v2", "v2/x", "sha256:abc", "x:y", "v2 ", "sha512:" + oldID} {
		require.ErrorContains(t, checkTarget(bad), "want an image tag", bad)
	}
	require.True(t, isImageID(d))
	require.True(t, isImageID(oldID))
	require.False(t, isImageID("forlock/api:v1"))
	require.Equal(t, "r/api@sha256:2", repoDigest("r/api:v1", []string{"o/api@sha256:1", "r/api@sha256:2"}))
	require.Equal(t, "o/api@sha256:1", repoDigest("x/api:v1", []string{"o/api@sha256:1"}))
	require.Empty(t, repoDigest("x/api:v1", nil))
}

func TestSourceRepository(t *testing.T) {
	d := "sha256:" + oldID
	repo, err := sourceRepository(ServiceRelease{Image: "r/api:v1"})
	require.NoError(t, err)
	require.Equal(t, "r/api", repo)
	repo, err = sourceRepository(ServiceRelease{Image: d, RepoDigest: "r/api@" + d})
	require.NoError(t, err)
	require.Equal(t, "r/api", repo)
	_, err = sourceRepository(ServiceRelease{Container: "n1-api", Image: d})
	require.ErrorContains(t, err, "names no repository")
}

func TestPostgresMajor(t *testing.T) {
	for _, tc := range []struct {
		env  []string
		want string
	}{
		{[]string{"PG_MAJOR=16", "PG_VERSION=16.4-1"}, "16"},
		{[]string{"PG_VERSION=15.8"}, "15"},
		{[]string{"PATH=/usr/lib/postgresql/15/bin:/usr/bin"}, "15"},
		{[]string{"PATH=/usr/local/bin:/usr/bin"}, ""},
		{nil, ""},
	} {
		require.Equal(t, tc.want, postgresMajor(tc.env), "%v", tc.env)
	}
}

func TestServices(t *testing.T) {
	got, err := services([]string{"nginx", "api"})
	require.NoError(t, err)
	require.Equal(t, []string{"api", "nginx"}, got, "dependency order")
	got, err = services(nil)
	require.NoError(t, err)
	require.Equal(t, Services, got)
	_, err = services([]string{"mysql"})
	require.ErrorContains(t, err, `unknown service "mysql"`)
}

func TestCheckPostgres(t *testing.T) {
	img := func(env ...string) image.InspectResponse {
		var r image.InspectResponse
		b, err := json.Marshal(map[string]any{"Config": map[string]any{"Env": env}})
		require.NoError(t, err)
		require.NoError(t, json.Unmarshal(b, &r))
		return r
	}
	cur := ServiceRelease{Container: "n1-postgres", PostgresMajor: "15"}
	require.NoError(t, checkPostgres(cur, "postgres:15.9", img("PG_MAJOR=15")))
	require.NoError(t, checkPostgres(cur, "x/redis:8", img("PATH=/usr/bin")), "no version: not PostgreSQL")
	require.NoError(t, checkPostgres(ServiceRelease{}, "postgres:16", img("PG_MAJOR=16")))
	err := checkPostgres(cur, "postgres:16", img("PG_MAJOR=16"))
	require.ErrorIs(t, err, ErrPostgresMajor)
	require.ErrorContains(t, err, "n1-postgres runs PostgreSQL 15 and postgres:16 is PostgreSQL 16")
}
