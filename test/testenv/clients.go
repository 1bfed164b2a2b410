package testenv

import (
	"bytes"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Login requests of the stand-in API (test/forlockapi).
const (
	// ClientImage runs a test's clients: the test node images' base has
	// curl, and needs no registry.
	ClientImage = "forlock-testnode-base:latest"
	LoginPath   = "/api/v1/auth/login"
	WrongLogin  = `{"email":"admin@forlock.test","password":"wrong"}`
)

// LoginClient is a container of its own on a test node's network: nginx
// sees its address, not the bridge gateway's.
type LoginClient struct{ Name, Addr string }

// StartLoginClient starts the i-th client container of node on network
// (the node's compose network, NAME_default).
func StartLoginClient(tb testing.TB, node, network string, i int) LoginClient {
	tb.Helper()
	RequireImage(tb, ClientImage)
	c := LoginClient{Name: node + "-client" + strconv.Itoa(i)}
	out, err := exec.Command("docker", "run", "-d", "--rm", "--name", c.Name, "--network", network,
		"--label", "org.forlock.test=login-client", ClientImage, "sleep", "600").CombinedOutput()
	require.NoError(tb, err, "%s", out)
	tb.Cleanup(func() { _ = exec.Command("docker", "rm", "-f", c.Name).Run() })
	out, err = exec.Command("docker", "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", c.Name).Output()
	require.NoError(tb, err)
	c.Addr = strings.TrimSpace(string(out))
	require.NotEmpty(tb, c.Addr)
	return c
}

// WrongLogins posts n wrong passwords to the node's nginx (as the service
// name "nginx" on the node's network) and returns the status codes.
func (c LoginClient) WrongLogins(tb testing.TB, n int) []string {
	tb.Helper()
	script := `for i in $(seq ` + strconv.Itoa(n) + `); do curl -sk -o /dev/null -w '%{http_code}\n' -X POST ` +
		`-H 'Content-Type: application/json' -d '` + WrongLogin + `' https://nginx` + LoginPath + `; done`
	out, err := exec.Command("docker", "exec", c.Name, "sh", "-c", script).CombinedOutput()
	require.NoError(tb, err, "%s", out)
	return strings.Fields(string(out))
}

// StartAlertmanager runs Debian's Alertmanager on a free loopback port
// and returns its base URL. With webhook set, it notifies that URL of
// every alert at once (no grouping, no wait) and of its resolution.
func StartAlertmanager(tb testing.TB, webhook string) string {
	tb.Helper()
	bin := RequireCommand(tb, "prometheus-alertmanager", "prometheus-alertmanager")
	dir := tb.TempDir()
	cfg := "route:\n  receiver: none\nreceivers:\n  - name: none\n"
	if webhook != "" {
		cfg = "route:\n  receiver: test\n  group_by: ['...']\n  group_wait: 0s\n  group_interval: 1s\n  repeat_interval: 1h\n" +
			"receivers:\n  - name: test\n    webhook_configs:\n      - url: " + webhook + "\n        send_resolved: true\n"
	}
	file := filepath.Join(dir, "alertmanager.yml")
	require.NoError(tb, os.WriteFile(file, []byte(cfg), 0o600))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(tb, err)
	addr := l.Addr().String()
	require.NoError(tb, l.Close())
	cmd := exec.Command(bin, "--config.file="+file, "--storage.path="+dir, "--web.listen-address="+addr, "--cluster.listen-address=")
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	require.NoError(tb, cmd.Start())
	tb.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if tb.Failed() {
			tb.Logf("--- alertmanager output ---\n%s", out.String())
		}
	})
	base := "http://" + addr
	require.Eventually(tb, func() bool {
		resp, err := http.Get(base + "/-/ready") //nolint:noctx // a readiness poll
		if err != nil {
			return false
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 20*time.Second, 50*time.Millisecond, "alertmanager did not start:\n%s", out)
	return base
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
