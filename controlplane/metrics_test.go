package controlplane

import (
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/forlock/fleet/controlplane/internal/secretfile"
)

// get fetches url with token as bearer (none if empty) and returns the
// status code and body.
func get(t *testing.T, url, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Do(req)
	require.NoError(t, err)
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(body)
}

// loopbackURL is the metrics listener's URL through 127.0.0.1, whatever
// address it is bound to.
func loopbackURL(s *Server, path string) string {
	_, port, _ := net.SplitHostPort(s.MetricsAddr().String())
	return "http://127.0.0.1:" + port + path
}

func TestMetricsBeyondLoopbackNeedsToken(t *testing.T) {
	cfg := Config{DataDir: filepath.Join(t.TempDir(), "cp"), Listen: "127.0.0.1:0"}
	cfg.Metrics.Listen = "0.0.0.0:0"
	_, err := New(cfg)
	require.ErrorContains(t, err, "set metrics_token_file (--metrics-token-file)")

	// Without a listener the other two settings mean nothing: refused too.
	cfg.Metrics.Listen, cfg.Metrics.Pprof = "", true
	_, err = New(cfg)
	require.ErrorContains(t, err, "need metrics_listen")
}

func TestMetricsTokenFileChecked(t *testing.T) {
	dir := t.TempDir()
	tok := filepath.Join(dir, "metrics.token")
	require.NoError(t, os.WriteFile(tok, []byte(strings.Repeat("a", 32)+"\n"), 0o644))
	cfg := Config{DataDir: filepath.Join(dir, "cp"), Listen: "127.0.0.1:0"}
	cfg.Metrics.Listen, cfg.Metrics.TokenFile = "0.0.0.0:0", tok
	_, err := New(cfg)
	require.ErrorIs(t, err, secretfile.ErrExposed)
	require.ErrorContains(t, err, "chmod 600 "+tok)

	require.NoError(t, os.WriteFile(tok, []byte("short\n"), 0o600))
	require.NoError(t, os.Chmod(tok, 0o600))
	_, err = New(cfg)
	require.ErrorContains(t, err, "at least 16 characters")
	require.NotContains(t, err.Error(), "short", "the token's content is never in a message")
}

func TestMetricsTokenAndPprof(t *testing.T) {
	const token = "9f2c6a1e0b7d4c3a8e5f1a2b3c4d5e6f"
	tok := filepath.Join(t.TempDir(), "metrics.token")
	require.NoError(t, os.WriteFile(tok, []byte(token+"\n"), 0o600))
	e := startEnv(t, func(c *Config) { c.Metrics.Listen, c.Metrics.TokenFile = "0.0.0.0:0", tok })
	url := loopbackURL(e.srv, "/metrics")

	code, body := get(t, url, "")
	require.Equal(t, http.StatusUnauthorized, code)
	require.NotContains(t, body, token)
	code, _ = get(t, url, token+"x")
	require.Equal(t, http.StatusUnauthorized, code)
	code, body = get(t, url, token)
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, "forlock_nodes{state=\"online\"} 0")
	require.Contains(t, body, "forlock_store_size_bytes ")

	code, _ = get(t, loopbackURL(e.srv, "/debug/pprof/"), token)
	require.Equal(t, http.StatusNotFound, code, "pprof is off unless metrics_pprof")
}

func TestMetricsPprofOnLoopback(t *testing.T) {
	e := startEnv(t, func(c *Config) { c.Metrics.Listen, c.Metrics.Pprof = "127.0.0.1:0", true })
	code, body := get(t, loopbackURL(e.srv, "/debug/pprof/"), "")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, "goroutine")
	code, _ = get(t, loopbackURL(e.srv, "/metrics"), "")
	require.Equal(t, http.StatusOK, code, "loopback without a token file needs none")
}
