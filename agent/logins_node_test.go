package agent

import (
	"context"
	"crypto/tls"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/forlock/fleet/agent/internal/checks"
	"github.com/forlock/fleet/test/testenv"
)

func repeat(s string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = s
	}
	return out
}

// TestLoginsOnATestNode: 30 wrong logins from one client container and 3
// from another, against a real test node's nginx and API, followed by the
// agent's watcher through the Docker logs API: the check is CRITICAL and
// names the first address with 30, the other below the threshold with 3.
// The agent's own health probes come through the published port, from the
// bridge gateway's address, and never show up; wrong logins through that
// same port do (the positive twin). After nginx restarts, the watcher
// re-attaches and counts on.
func TestLoginsOnATestNode(t *testing.T) {
	n := testenv.UpTestNode(t, "fl-logins")
	network := n.Name + "_default"
	out, err := exec.Command("docker", "network", "inspect", "-f", "{{range .IPAM.Config}}{{.Gateway}}{{end}}", network).Output()
	require.NoError(t, err)
	gateway := strings.TrimSpace(string(out))
	require.NotEmpty(t, gateway)

	cfg, err := Config{ControlPlane: "cp:1", Name: "n", StateDir: t.TempDir(),
		Health: HealthConfig{Containers: n.Containers(), APIURL: n.URL, APIInsecureSkipVerify: true}}.validate()
	require.NoError(t, err)
	hc := cfg.newHealth()
	t.Cleanup(hc.close)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- hc.logins.Run(ctx) }()
	t.Cleanup(func() { cancel(); require.NoError(t, <-done) })

	logins := func() checks.Result {
		t.Helper()
		for _, r := range hc.suite.Run(t.Context()).Results { // the api check probes through the published port
			if r.Name == "logins" {
				return r
			}
		}
		t.Fatal("no logins check in the report")
		return checks.Result{}
	}
	require.Eventually(t, func() bool { return hc.logins.Snapshot().Following }, 30*time.Second, 50*time.Millisecond)
	r := logins()
	require.Equal(t, checks.OK, r.Status, r.String())
	// The stand-in API really answers 401 (an API image without the login
	// endpoint would answer 404 and nothing would count).
	hostLogin := func() int {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, n.URL+testenv.LoginPath, strings.NewReader(testenv.WrongLogin))
		require.NoError(t, err)
		resp, err := (&http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}).Do(req) //nolint:gosec // the test node's self-signed certificate
		require.NoError(t, err)
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	require.Equal(t, http.StatusUnauthorized, hostLogin(),
		"the API image has no login endpoint: rebuild the test images with deploy/testnode/build-images.sh")

	a := testenv.StartLoginClient(t, n.Name, network, 1)
	b := testenv.StartLoginClient(t, n.Name, network, 2)
	require.Equal(t, repeat("401", 30), a.WrongLogins(t, 30))
	require.Equal(t, repeat("401", 3), b.WrongLogins(t, 3))
	hostLogin() // a second wrong login through the published port: 2 from the gateway

	// The log reaches the watcher within a moment; run the suite (with its
	// probes through the published port) until it has all 36.
	require.Eventually(t, func() bool {
		r = logins()
		return r.Status == checks.Critical && len(r.Measurements) == 4 && r.Measurements[2].Value == 2
	}, 20*time.Second, 200*time.Millisecond, "last: %s %v", r, r.Measurements)
	t.Logf("%s; measurements %v", r, r.Measurements)
	require.Contains(t, r.Summary, "more than 10 failed logins in the last minute from "+a.Addr+" (30);")
	require.NotContains(t, r.Summary, b.Addr+" (")
	require.Equal(t, []checks.Measurement{
		{Name: "failed_logins_per_minute", Value: 30, Subject: a.Addr},
		{Name: "failed_logins_per_minute", Value: 3, Subject: b.Addr},
		{Name: "failed_logins_per_minute", Value: 2, Subject: gateway},
		{Name: "blocked_addresses", Value: 0},
	}, r.Measurements, "the agent's probes (many, from %s) are not counted; its 2 wrong logins are", gateway)

	// nginx restarts: the watcher re-attaches and counts on. A new client
	// each time, so the counts do not depend on how long a restart takes
	// (the window is a minute).
	out, err = exec.Command("docker", "restart", n.Name+"-nginx").CombinedOutput()
	require.NoError(t, err, "%s", out)
	countedAfter := func(i, count int, what string) {
		t.Helper()
		c := testenv.StartLoginClient(t, n.Name, network, i)
		require.Eventually(t, func() bool {
			codes := c.WrongLogins(t, 1)
			return len(codes) == 1 && codes[0] == "401"
		}, 60*time.Second, 500*time.Millisecond, "nginx did not come back after the %s", what)
		require.Equal(t, repeat("401", count-1), c.WrongLogins(t, count-1))
		require.Eventually(t, func() bool {
			r = logins()
			return failedLogins(r, c.Addr) == float64(count)
		}, 40*time.Second, 200*time.Millisecond, "after the %s: %s %v", what, r, r.Measurements)
	}
	countedAfter(3, 3, "restart")

	// nginx is removed: the watcher says it cannot follow (the count seen
	// still stands); compose creates it again (a new container, same name):
	// the watcher finds it by name and counts on.
	out, err = exec.Command("docker", "rm", "-f", n.Name+"-nginx").CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Eventually(t, func() bool { return !hc.logins.Snapshot().Following }, 30*time.Second, 100*time.Millisecond)
	require.Contains(t, hc.logins.Snapshot().Problem, "cannot follow the nginx container's log")
	up := exec.Command("docker-compose", "-p", n.Name, "-f", filepath.Join("..", "deploy", "testnode", "docker-compose.yml"),
		"up", "-d", "--no-deps", "nginx")
	up.Env = append(os.Environ(), "NODE_NAME="+n.Name)
	out, err = up.CombinedOutput()
	require.NoError(t, err, "%s", out)
	countedAfter(4, 4, "recreation")
	require.True(t, hc.logins.Snapshot().Following)
}

// failedLogins is the check's failed_logins_per_minute for addr, 0 if none.
func failedLogins(r checks.Result, addr string) float64 {
	for _, m := range r.Measurements {
		if m.Name == "failed_logins_per_minute" && m.Subject == addr {
			return m.Value
		}
	}
	return 0
}
