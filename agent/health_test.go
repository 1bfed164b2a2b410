package agent

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/forlock/fleet/agent/internal/checks"
)

func TestHealthSettingsPrecedence(t *testing.T) {
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "agent.yaml")
	require.NoError(t, os.WriteFile(cfgFile, []byte(`version: 1
docker_host: unix:///file/docker.sock
containers: [a, b]
compose_project: file-project
api_url: https://file.example.net
api_ca_file: node-ca.pem
api_server_name: file.example.net
postgres_dsn_file: dsn
redis_addr: file:6379
redis_password_file: redis-pw
check_timeout: 2s
trusted_proxies: [10.0.0.0/8, 192.0.2.7]
`), 0o600))

	st, err := resolve(t, []string{"--config", cfgFile}, nil)
	require.NoError(t, err)
	require.Equal(t, HealthConfig{
		DockerHost: "unix:///file/docker.sock", Containers: []string{"a", "b"}, ComposeProject: "file-project",
		APIURL: "https://file.example.net", APICAFile: filepath.Join(dir, "node-ca.pem"), APIServerName: "file.example.net",
		PostgresDSNFile: filepath.Join(dir, "dsn"), RedisAddr: "file:6379", RedisPasswordFile: filepath.Join(dir, "redis-pw"),
		CheckTimeout: 2 * time.Second, LoginPaths: []string{"/api/v1/auth/login"}, TrustedProxies: []string{"10.0.0.0/8", "192.0.2.7"},
	}, st.cfg.Health)

	env := map[string]string{PostgresDSNEnv: "postgres://env", RedisPasswordEnv: "env-pw"}
	st, err = resolve(t, []string{"--config", cfgFile}, env)
	require.NoError(t, err)
	require.Equal(t, "postgres://env", st.cfg.Health.PostgresDSN)
	require.Empty(t, st.cfg.Health.PostgresDSNFile, "the environment beats the file's postgres_dsn_file")
	require.Equal(t, "env-pw", st.cfg.Health.RedisPassword)
	require.Empty(t, st.cfg.Health.RedisPasswordFile)

	st, err = resolve(t, []string{"--config", cfgFile,
		"--docker-host", "tcp://10.0.0.5:2376", "--containers", "x,y,z", "--compose-project", "flag-project",
		"--api-url", "https://127.0.0.1:8443", "--api-ca-file", "", "--api-insecure-skip-verify", "--api-server-name", "flag.example.net",
		"--postgres-dsn-file", "/flag/dsn", "--redis-addr", "127.0.0.1:6380", "--redis-password-file", "/flag/pw",
		"--check-timeout", "3s"}, env)
	require.NoError(t, err)
	h := st.cfg.Health
	require.Equal(t, "tcp://10.0.0.5:2376", h.DockerHost)
	require.Equal(t, []string{"x", "y", "z"}, h.Containers)
	require.Equal(t, "flag-project", h.ComposeProject)
	require.Equal(t, "https://127.0.0.1:8443", h.APIURL)
	require.True(t, h.APIInsecureSkipVerify)
	require.Empty(t, h.APICAFile)
	require.Equal(t, "flag.example.net", h.APIServerName)
	require.Equal(t, "/flag/dsn", h.PostgresDSNFile, "the flag beats the environment")
	require.Equal(t, "127.0.0.1:6380", h.RedisAddr)
	require.Equal(t, "/flag/pw", h.RedisPasswordFile)
	require.Equal(t, 3*time.Second, h.CheckTimeout)

	_, err = resolve(t, []string{"--control-plane", "cp:1", "--name", "n", "--api-url", "ftp://x"}, nil)
	require.NoError(t, err, "flags are checked with the rest of the config by New")
}

func TestHealthConfigValidate(t *testing.T) {
	base := Config{ControlPlane: "cp.example.net:7443", Name: "web-1"}
	tests := []struct {
		name    string
		mod     func(*HealthConfig)
		wantErr string
	}{
		{"defaults", func(*HealthConfig) {}, ""},
		{"docker tcp", func(h *HealthConfig) { h.DockerHost = "tcp://10.0.0.5:2376" }, ""},
		{"docker path", func(h *HealthConfig) { h.DockerHost = "/var/run/docker.sock" }, `docker host "/var/run/docker.sock": want an address such as unix://`},
		{"container with slash", func(h *HealthConfig) { h.Containers = []string{"a/b"} }, `container name "a/b"`},
		{"project with space", func(h *HealthConfig) { h.ComposeProject = "a b" }, `compose project "a b" must not contain spaces`},
		{"api http", func(h *HealthConfig) { h.APIURL = "http://127.0.0.1:8080" }, ""},
		{"api no scheme", func(h *HealthConfig) { h.APIURL = "127.0.0.1" }, `api url "127.0.0.1": want the API's base URL`},
		{"api query", func(h *HealthConfig) { h.APIURL = "https://x/?a=b" }, `api url "https://x/?a=b"`},
		{"ca and insecure", func(h *HealthConfig) { h.APICAFile, h.APIInsecureSkipVerify = "ca.pem", true }, "api CA file and api insecure skip verify are both set: keep one"},
		{"redis no port", func(h *HealthConfig) { h.RedisAddr = "redis" }, `redis address "redis": want HOST:PORT`},
		{"negative timeout", func(h *HealthConfig) { h.CheckTimeout = -time.Second }, "check timeout -1s"},
		{"long timeout", func(h *HealthConfig) { h.CheckTimeout = time.Minute }, "check timeout 1m0s: want a duration from 0 (default 4s) to 30s"},
		{"login paths", func(h *HealthConfig) { h.LoginPaths = []string{"/api/v1/auth/login", "/login"} }, ""},
		{"login path relative", func(h *HealthConfig) { h.LoginPaths = []string{"login"} }, `login path "login": want a clean absolute path`},
		{"login path unclean", func(h *HealthConfig) { h.LoginPaths = []string{"/a/../login"} }, `login path "/a/../login"`},
		{"trusted proxies", func(h *HealthConfig) { h.TrustedProxies = []string{"10.0.0.0/8", "::1"} }, ""},
		{"trusted proxy name", func(h *HealthConfig) { h.TrustedProxies = []string{"lb.example.net"} }, `trusted proxy "lb.example.net": want a CIDR`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := base
			tt.mod(&cfg.Health)
			got, err := cfg.validate()
			if tt.wantErr != "" {
				require.ErrorContains(t, err, "health checks: "+tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.NotEmpty(t, got.Health.Containers)
		})
	}
}

// A host without Forlock (no Docker engine, nothing configured) reports
// disk and memory, and every other check UNKNOWN with what to configure,
// within the time budget.
func TestHealthOnAHostWithoutForlock(t *testing.T) {
	cfg, err := Config{ControlPlane: "cp:1", Name: "n", StateDir: t.TempDir(),
		Health: HealthConfig{DockerHost: "unix://" + filepath.Join(t.TempDir(), "docker.sock")}}.validate()
	require.NoError(t, err)
	hc := cfg.newHealth()
	t.Cleanup(hc.close)
	reserve443(t)
	start := time.Now()
	rep := hc.suite.Run(t.Context())
	require.Less(t, time.Since(start), 5*time.Second)

	byName := map[string]checks.Result{}
	var names []string
	for _, r := range rep.Results {
		byName[r.Name] = r
		names = append(names, r.Name)
	}
	require.Equal(t, []string{"disk", "memory", "cpu", "disk/docker", "disk/backup", "container/forlock-api", "container/forlock-postgres", "container/forlock-redis",
		"container/forlock-nginx", "api", "postgres", "redis", "logins", "certificate"}, names)
	require.NotEqual(t, checks.Unknown, byName["disk"].Status, byName["disk"].String())
	require.NotEqual(t, checks.Unknown, byName["cpu"].Status, byName["cpu"].String())
	require.Equal(t, checks.Unknown, byName["disk/docker"].Status)
	require.Contains(t, byName["disk/docker"].Summary, "cannot find Docker's data root: docker engine at unix://")
	for _, n := range []string{"container/forlock-api", "container/forlock-nginx"} {
		require.Equal(t, checks.Unknown, byName[n].Status)
		require.Contains(t, byName[n].Summary, "set docker_host")
	}
	require.Equal(t, checks.Unknown, byName["postgres"].Status)
	require.Contains(t, byName["postgres"].Summary, "set postgres_dsn_file or "+PostgresDSNEnv)
	require.Equal(t, checks.Unknown, byName["redis"].Status)
	require.Contains(t, byName["redis"].Summary, "set redis_addr")
	require.Equal(t, checks.Unknown, byName["api"].Status, byName["api"].String())
	require.Contains(t, byName["api"].Summary, "set api_url")
	require.Equal(t, checks.Unknown, byName["logins"].Status, byName["logins"].String())
	require.Contains(t, byName["logins"].Summary, "nginx container's log")
	require.Equal(t, checks.Unknown, byName["certificate"].Status, byName["certificate"].String())
	require.Contains(t, byName["certificate"].Summary, "nothing listens at 127.0.0.1:443 (the default): set tls_addr")
	require.Nil(t, rep.Proto().GetCertificate())
	require.Empty(t, rep.Containers)
	require.Len(t, rep.Proto().GetChecks(), 14)
}

// reserve443 makes sure nothing listens on 127.0.0.1:443, where the api and
// certificate checks look by default, while the test runs: it binds the port
// without listening (a connection to it is refused), so no server can take
// it meanwhile. Without root it can only check that nothing listens there.
// When something does, the test fails saying so.
func reserve443(t *testing.T) {
	t.Helper()
	const busy = "something listens on 127.0.0.1:443, where the api and certificate checks look by default, " +
		"and this test asserts what they say when nothing does: stop it (ss -ltnp 'sport = :443' names it)"
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	t.Cleanup(func() { _ = unix.Close(fd) })
	err = unix.Bind(fd, &unix.SockaddrInet4{Port: 443, Addr: [4]byte{127, 0, 0, 1}})
	switch {
	case err == nil:
	case errors.Is(err, unix.EADDRINUSE):
		t.Fatal(busy)
	case errors.Is(err, unix.EACCES): // not root: only root can start a server there
		if c, err := net.DialTimeout("tcp", "127.0.0.1:443", time.Second); err == nil {
			_ = c.Close()
			t.Fatal(busy)
		}
	default:
		require.NoError(t, err, "bind 127.0.0.1:443")
	}
}

func TestHealthWithABadAPICAFile(t *testing.T) {
	cfg, err := Config{ControlPlane: "cp:1", Name: "n", StateDir: t.TempDir(),
		Health: HealthConfig{APICAFile: filepath.Join(t.TempDir(), "missing.pem")}}.validate()
	require.NoError(t, err)
	hc := cfg.newHealth()
	t.Cleanup(hc.close)
	r := hc.suite.Services[0].Run(t.Context())
	require.Equal(t, "api", r.Name)
	require.Equal(t, checks.Unknown, r.Status)
	require.Contains(t, r.Summary, "fix api_ca_file")
}
