package agent

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/forlock/fleet/agent/internal/checks"
	"github.com/forlock/fleet/agent/internal/dockerrt"
	"github.com/forlock/fleet/agent/internal/logins"
	"github.com/forlock/fleet/agent/internal/session"
)

// Environment variables that may hold the health checks' credentials (the
// config file never does: it is often world-readable).
const (
	PostgresDSNEnv   = "FORLOCK_POSTGRES_DSN"
	RedisPasswordEnv = "FORLOCK_REDIS_PASSWORD" //nolint:gosec // the name of a variable, not a credential
)

// DefaultAPIURL is where the health checks reach the Forlock API unless
// told otherwise: the node's nginx on this host.
const DefaultAPIURL = "https://127.0.0.1"

// HealthConfig configures the health checks of the node's Forlock stack.
// Every field has a safe default; a check whose target is not configured
// reports UNKNOWN and says what to set.
type HealthConfig struct {
	// DockerHost is the Docker Engine's address, e.g.
	// unix:///var/run/docker.sock. Empty means DOCKER_HOST, else the
	// default socket.
	DockerHost string
	// Containers are the expected containers, by container name or compose
	// service name. Empty means forlock-api, forlock-postgres,
	// forlock-redis, forlock-nginx.
	Containers []string
	// ComposeProject, if set, finds the containers by their
	// com.docker.compose.project label instead of by name.
	ComposeProject string
	// APIURL is the base URL of the Forlock API whose /api/v1/health
	// endpoints are checked. Empty means DefaultAPIURL.
	APIURL string
	// APICAFile is a PEM bundle that verifies the API's certificate (the
	// node's CA); empty means the system roots.
	APICAFile string
	// APIServerName is the name the API's certificate is verified against,
	// when it differs from APIURL's host.
	APIServerName string
	// APIInsecureSkipVerify accepts any certificate from the API.
	APIInsecureSkipVerify bool
	// PostgresDSN is the PostgreSQL connection string (from
	// FORLOCK_POSTGRES_DSN); PostgresDSNFile, a file holding it, read at
	// every check, wins when set.
	PostgresDSN, PostgresDSNFile string
	// RedisAddr is Redis's host:port; empty leaves the Redis check
	// unconfigured.
	RedisAddr string
	// RedisPassword is Redis's password (from FORLOCK_REDIS_PASSWORD);
	// RedisPasswordFile, a file holding it, read at every check, wins when
	// set.
	RedisPassword, RedisPasswordFile string
	// CheckTimeout bounds each check; zero means 4s. At most 30s.
	CheckTimeout time.Duration
	// LoginPaths are the API's login endpoints whose 401 answers in nginx's
	// access log count as failed logins; empty means
	// logins.DefaultLoginPath.
	LoginPaths []string
	// TrustedProxies are CIDRs of proxies in front of nginx whose
	// X-Forwarded-For names the client; empty trusts none.
	TrustedProxies []string
}

// validate returns h with defaults filled in, or an error naming the
// first thing to fix.
func (h HealthConfig) validate() (HealthConfig, error) {
	if h.DockerHost != "" {
		u, err := url.Parse(h.DockerHost)
		if err != nil || !slices.Contains([]string{"unix", "tcp", "http", "https", "npipe", "ssh"}, u.Scheme) {
			return h, fmt.Errorf("docker host %q: want an address such as unix:///var/run/docker.sock or tcp://HOST:2376", h.DockerHost)
		}
	}
	for _, n := range h.Containers {
		if n == "" || strings.ContainsFunc(n, func(r rune) bool { return isSpaceOrControl(r) || r == '/' || r == ',' }) {
			return h, fmt.Errorf("container name %q: want a container or compose service name such as forlock-api", n)
		}
	}
	if len(h.Containers) == 0 {
		h.Containers = slices.Clone(dockerrt.DefaultNames)
	}
	if strings.ContainsFunc(h.ComposeProject, isSpaceOrControl) {
		return h, fmt.Errorf("compose project %q must not contain spaces", h.ComposeProject)
	}
	if h.APIURL != "" {
		u, err := url.Parse(h.APIURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
			return h, fmt.Errorf("api url %q: want the API's base URL, e.g. https://vault.example.net or https://127.0.0.1:8443", h.APIURL)
		}
	}
	if h.APIInsecureSkipVerify && h.APICAFile != "" {
		return h, errors.New("api CA file and api insecure skip verify are both set: keep one")
	}
	if h.RedisAddr != "" {
		if _, _, err := splitHostPort(h.RedisAddr); err != nil {
			return h, fmt.Errorf("redis address %q: %w", h.RedisAddr, err)
		}
	}
	for _, p := range h.LoginPaths {
		if !strings.HasPrefix(p, "/") || strings.ContainsAny(p, "?# ") || path.Clean(p) != p {
			return h, fmt.Errorf("login path %q: want a clean absolute path such as %s", p, logins.DefaultLoginPath)
		}
	}
	if _, err := logins.ParseProxies(h.TrustedProxies); err != nil {
		return h, err
	}
	if h.CheckTimeout < 0 || h.CheckTimeout > 30*time.Second {
		return h, fmt.Errorf("check timeout %s: want a duration from 0 (default %s) to 30s", h.CheckTimeout, checks.DefaultCheckTimeout)
	}
	return h, nil
}

// health is the agent's health checking: the suite the health_check task
// runs and the monitor that runs it for the heartbeats.
type health struct {
	suite   *checks.Suite
	monitor *checks.Monitor
	docker  *dockerrt.Runtime // nil if it could not be set up
	// logins follows nginx's access log for the logins check; Run it.
	logins *logins.Watcher
}

// newHealth builds the checks. A check it cannot set up (an unreadable API
// CA file, say) reports UNKNOWN with the reason instead of stopping the
// agent: the control stream matters more than any one check.
func (cfg Config) newHealth() *health {
	h := cfg.Health
	host := checks.HostConfig{StateDir: cfg.StateDir, BackupDirs: cfg.Backup.BackupDirs}
	if cfg.WAL.Archive && cfg.WAL.Bucket == "" {
		host.WALArchiveDir = cfg.WAL.Dir
	}
	ctr := &checks.Containers{Expected: h.Containers}
	trusted, _ := logins.ParseProxies(h.TrustedProxies) // checked by validate
	lw := logins.Config{LoginPaths: h.LoginPaths, Trusted: trusted, Ignored: checks.APIEndpoints}
	var docker *dockerrt.Runtime
	rt, err := dockerrt.New(dockerrt.Config{Host: h.DockerHost, Names: h.Containers, Project: h.ComposeProject})
	if err != nil {
		ctr.Unconfigured = fmt.Sprintf("cannot set up the Docker Engine client: %v: fix docker_host or DOCKER_HOST", err)
		host.DockerMissing, lw.Unconfigured = ctr.Unconfigured, ctr.Unconfigured
	} else {
		ctr.Lister, docker, lw.Source = rt, rt, rt
		host.DockerRoot = dockerRoot(rt)
	}
	s := &checks.Suite{Timeout: h.CheckTimeout, Host: checks.HostChecks(host), Containers: ctr}
	out := &health{suite: s, monitor: checks.NewMonitor(s, session.DefaultHeartbeatInterval), docker: docker}
	out.logins = logins.New(lw)

	s.Services = []checks.Check{cfg.apiCheck(), checks.Postgres{DSN: checks.Secret{Value: h.PostgresDSN, File: h.PostgresDSNFile}},
		checks.Redis{Addr: h.RedisAddr, Password: checks.Secret{Value: h.RedisPassword, File: h.RedisPasswordFile}},
		checks.Logins{Source: out.logins}}
	s.Certificate = cfg.certCheck()
	return out
}

// dockerRoot asks the Engine for its data root, whose file system the
// disk/docker check reads here: only an Engine on this host (a unix
// socket) has its data root on this host's disks.
func dockerRoot(rt *dockerrt.Runtime) func(ctx context.Context) (string, error) {
	return func(ctx context.Context) (string, error) {
		if u, err := url.Parse(rt.Host()); err != nil || u.Scheme != "unix" {
			return "", fmt.Errorf("the Docker Engine at %s is not on this host's unix socket, so its disk is not visible here: "+
				"point docker_host at the local socket", rt.Host())
		}
		return rt.RootDir(ctx)
	}
}

func (cfg Config) apiCheck() checks.Check {
	a, err := cfg.api()
	if err != nil {
		return brokenCheck{name: "api", summary: fmt.Sprintf("%v: fix api_ca_file", err)}
	}
	return a
}

// api is the Forlock API as the checks reach it: base URL and TLS client.
func (cfg Config) api() (checks.API, error) {
	h := cfg.Health
	base, explicit := h.APIURL, h.APIURL != ""
	if !explicit {
		base = DefaultAPIURL
	}
	client, err := checks.NewAPIClient(checks.APIClientConfig{CAFile: h.APICAFile, ServerName: h.APIServerName,
		InsecureSkipVerify: h.APIInsecureSkipVerify})
	if err != nil {
		return checks.API{}, err
	}
	return checks.API{BaseURL: base, Explicit: explicit, Client: client, Latencies: checks.NewLatencies(checks.DefaultLatencyWindow)}, nil
}

// close releases the Docker client.
func (h *health) close() {
	if h.docker != nil {
		_ = h.docker.Close()
	}
}

// brokenCheck is a check that could not be set up: it reports why.
type brokenCheck struct{ name, summary string }

func (b brokenCheck) Name() string { return b.name }

func (b brokenCheck) Run(_ context.Context) checks.Result {
	return checks.Result{Name: b.name, Status: checks.Unknown, Summary: b.summary}
}
