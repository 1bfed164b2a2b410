package upgrade

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/forlock/fleet/agent/internal/dockerrt"

	"github.com/forlock/fleet/test/testenv"
)

// Test credentials of deploy/registry (its defaults, set explicitly).
const (
	registryUser     = "forlock-h2-test"
	registryPassword = "forlock-h2-test-secret"
)

var deployDir = filepath.Join("..", "..", "..", "deploy")

func docker(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("docker", args...).CombinedOutput()
	require.NoError(t, err, "docker %v: %s", args, out)
	return strings.TrimSpace(string(out))
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	_, port, _ := net.SplitHostPort(l.Addr().String())
	require.NoError(t, l.Close())
	return port
}

func suffix() string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// testRegistry is deploy/registry's registry with the API's releases.
type testRegistry struct {
	dir, port, endpoint string
	// digests of :v1, :v2, :v3 and :latest (sha256:...).
	digests map[string]string
	env     []string
}

// startRegistry starts a registry on a free port and pushes the API
// releases; the local copies of v2 and v3 are removed, so upgrades pull.
func startRegistry(t *testing.T) *testRegistry {
	t.Helper()
	testenv.RequireServerBinary(t, "registry")
	testenv.RequireImage(t, "forlock-test/api", "forlock-test/postgres", "forlock-test/redis", "forlock-test/nginx")

	r := &testRegistry{dir: t.TempDir(), port: freePort(t), digests: map[string]string{}}
	r.env = append(os.Environ(), "FORLOCK_REGISTRY_USER="+registryUser, "FORLOCK_REGISTRY_PASSWORD="+registryPassword)
	r.start(t)
	repo := r.endpoint + "/forlock/api"
	t.Cleanup(func() {
		for _, tag := range []string{"v1", "v2", "v3", "latest"} {
			_ = exec.Command("docker", "rmi", repo+":"+tag).Run()
		}
		for _, d := range r.digests {
			_ = exec.Command("docker", "rmi", repo+"@"+d).Run()
		}
	})
	t.Cleanup(func() { _ = exec.Command(filepath.Join(deployDir, "registry", "stop.sh"), r.dir).Run() })

	push := exec.Command(filepath.Join(deployDir, "registry", "push-images.sh"), r.endpoint)
	push.Env = r.env
	out, err := push.Output()
	require.NoError(t, err, "push-images.sh: %s", errOut(err))
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		ref, digest, ok := strings.Cut(line, " ")
		require.True(t, ok, line)
		r.digests[ref[strings.LastIndexByte(ref, ':')+1:]] = digest
	}
	require.Len(t, r.digests, 4, "%s", out)
	require.Equal(t, r.digests["v1"], r.digests["latest"])
	docker(t, "rmi", repo+":v2", repo+":v3")
	return r
}

func (r *testRegistry) start(t *testing.T) {
	t.Helper()
	cmd := exec.Command(filepath.Join(deployDir, "registry", "start.sh"), r.dir, r.port)
	cmd.Env = r.env
	out, err := cmd.Output()
	require.NoError(t, err, "start.sh: %s", errOut(err))
	r.endpoint = strings.TrimSpace(string(out))
}

func (r *testRegistry) stop(t *testing.T) {
	t.Helper()
	out, err := exec.Command(filepath.Join(deployDir, "registry", "stop.sh"), r.dir).CombinedOutput()
	require.NoError(t, err, "%s", out)
}

func (r *testRegistry) auth() dockerrt.RegistryAuth {
	return dockerrt.RegistryAuth{Username: registryUser, Password: registryPassword}
}

func errOut(err error) string {
	if ee, ok := err.(*exec.ExitError); ok { //nolint:errorlint // exec returns it unwrapped
		return string(ee.Stderr)
	}
	if err != nil {
		return err.Error()
	}
	return ""
}

// testNode is a deploy/testnode node whose API comes from the registry.
type testNode struct {
	name string
	url  string // https://127.0.0.1:PORT through nginx
	rt   *dockerrt.Runtime
	up   *Upgrader
}

func startNode(t *testing.T, reg *testRegistry) *testNode {
	t.Helper()
	if testing.Short() {
		t.Skip("real Docker test node and registry")
	}
	n := &testNode{name: "fl-h2up-" + suffix()}
	up := exec.Command("bash", filepath.Join(deployDir, "testnode", "up.sh"), n.name)
	up.Env = append(os.Environ(), "API_REPO="+reg.endpoint+"/forlock/api")
	out, err := up.Output()
	t.Cleanup(func() {
		for _, svc := range Services {
			_ = exec.Command("docker", "rm", "-f", n.name+"-"+svc+PrevSuffix).Run()
		}
		_ = exec.Command("bash", filepath.Join(deployDir, "testnode", "down.sh"), n.name).Run()
	})
	require.NoError(t, err, "up.sh: %s", errOut(err))
	n.url = strings.TrimSpace(string(out))

	names := map[string]string{}
	for _, svc := range Services {
		names[svc] = n.name + "-" + svc
	}
	n.rt, err = dockerrt.New(dockerrt.Config{Names: []string{names["postgres"], names["redis"], names["api"], names["nginx"]}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = n.rt.Close() })
	n.up, err = New(Config{Docker: n.rt, Containers: names, StopTimeout: 10 * time.Second})
	require.NoError(t, err)
	return n
}

var insecure = &http.Client{
	Timeout: time.Second,
	Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // the test node's self-signed certificate
		DisableKeepAlives: true,
	},
}

// apiHealth is the guide's API health check through nginx; it returns the
// version the API reports.
func (n *testNode) apiHealth(ctx context.Context) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, n.url+"/api/v1/health", nil)
	if err != nil {
		return "", err
	}
	resp, err := insecure.Do(req)
	if err != nil {
		return "", err
	}
	defer func() { _ = resp.Body.Close() }()
	var body struct {
		Status, Version, Error string
	}
	_ = json.NewDecoder(resp.Body).Decode(&body)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET /api/v1/health: %s %s", resp.Status, body.Error)
	}
	return body.Version, nil
}

// health is the caller's check Upgrade takes: the API through nginx.
func (n *testNode) health(ctx context.Context, service string) error {
	if service != "api" {
		return nil
	}
	_, err := n.apiHealth(ctx)
	return err
}

func (n *testNode) id(t *testing.T, svc string) string {
	t.Helper()
	return docker(t, "inspect", "-f", "{{.Id}}", n.name+"-"+svc)
}

func (n *testNode) ids(t *testing.T) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, svc := range Services {
		m[svc] = n.id(t, svc)
	}
	return m
}

func (n *testNode) noPrev(t *testing.T) {
	t.Helper()
	out := docker(t, "ps", "-a", "--filter", "name="+n.name, "--format", "{{.Names}}")
	require.NotContains(t, out, PrevSuffix)
}

// summary is the stand-in API's row count and checksum of the vault.
func (n *testNode) summary(t *testing.T) string {
	t.Helper()
	return docker(t, "exec", n.name+"-api", "forlockapi", "summary")
}

// poller polls the API's health through nginx every interval and counts
// the failures and the longest run of them, as a user would see an
// upgrade.
type poller struct {
	mu                    sync.Mutex
	polls, failed         int
	gapStart, lastSuccess time.Time
	longest               time.Duration
	cancel                context.CancelFunc
	done                  chan struct{}
}

func (n *testNode) poll(interval time.Duration) *poller {
	ctx, cancel := context.WithCancel(context.Background())
	p := &poller{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			_, err := n.apiHealth(ctx)
			now := time.Now()
			p.mu.Lock()
			if ctx.Err() == nil {
				p.polls++
				if err != nil {
					p.failed++
					if p.gapStart.IsZero() {
						p.gapStart = p.lastSuccess
						if p.gapStart.IsZero() {
							p.gapStart = now
						}
					}
				} else {
					if !p.gapStart.IsZero() {
						p.longest = max(p.longest, now.Sub(p.gapStart))
						p.gapStart = time.Time{}
					}
					p.lastSuccess = now
				}
			}
			p.mu.Unlock()
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return p
}

// stop ends the polling and returns polls, failed polls and the longest
// gap between two successful polls that had failures between them.
func (p *poller) stop() (polls, failed int, longest time.Duration) {
	p.cancel()
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.polls, p.failed, p.longest
}
