package checks

import (
	"context"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestEvaluateAPI(t *testing.T) {
	ok := func(path string) Probe { return Probe{Path: path, Status: 200, Latency: 5 * time.Millisecond} }
	refused := func(path string) Probe {
		return Probe{Path: path, Err: &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}}
	}
	all := func(f func(string) Probe) []Probe {
		ps := make([]Probe, len(APIEndpoints))
		for i, p := range APIEndpoints {
			ps[i] = f(p)
		}
		return ps
	}
	tests := []struct {
		name     string
		explicit bool
		probes   []Probe
		p95      time.Duration
		want     Status
		line     string
	}{
		{"all fine", true, all(ok), 12 * time.Millisecond, OK,
			"api OK 3 endpoints answered 200; p95 12 ms over the last 9 requests"},
		{"exactly 200 ms is OK", true, all(ok), 200 * time.Millisecond, OK,
			"api OK 3 endpoints answered 200; p95 200 ms over the last 9 requests"},
		{"above target warns", true, all(ok), 201 * time.Millisecond, Warn,
			"api WARN 3 endpoints answered 200; p95 201 ms over the last 9 requests, above the 200 ms target"},
		{"exactly 500 ms warns", true, all(ok), 500 * time.Millisecond, Warn,
			"api WARN 3 endpoints answered 200; p95 500 ms over the last 9 requests, above the 200 ms target"},
		{"above 500 ms is critical", true, all(ok), 501 * time.Millisecond, Critical,
			"api CRITICAL 3 endpoints answered 200; p95 501 ms over the last 9 requests, above 500 ms"},
		{"db endpoint 500", true, []Probe{ok(APIEndpoints[0]), {Path: APIEndpoints[1], Status: 500}, ok(APIEndpoints[2])}, 5 * time.Millisecond, Critical,
			"api CRITICAL /api/v1/health/db answered 500 Internal Server Error; p95 5 ms over the last 9 requests"},
		{"timeout", true, []Probe{{Path: APIEndpoints[0], Err: context.DeadlineExceeded}, ok(APIEndpoints[1]), ok(APIEndpoints[2])}, 4 * time.Second, Critical,
			"api CRITICAL /api/v1/health: no answer in time; p95 4000 ms over the last 9 requests"},
		{"refused at the default URL", false, all(refused), 0, Unknown,
			"api UNKNOWN nothing listens at https://127.0.0.1 (the default): set api_url to the node's Forlock API"},
		{"refused at a configured URL", true, all(refused)[:1], 0, Critical,
			"api CRITICAL /api/v1/health: connection refused; p95 0 ms over the last 9 requests"},
		{"partly refused at the default URL", false, []Probe{refused(APIEndpoints[0]), ok(APIEndpoints[1])}, 0, Critical,
			"api CRITICAL /api/v1/health: connection refused; p95 0 ms over the last 9 requests"},
		{"tls error", true, []Probe{{Path: APIEndpoints[0], Err: errors.New("tls: failed to verify certificate")}}, 0, Critical,
			"api CRITICAL /api/v1/health: tls: failed to verify certificate; p95 0 ms over the last 9 requests"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := EvaluateAPI("https://127.0.0.1", tt.explicit, tt.probes, tt.p95, 9)
			require.Equal(t, tt.want, r.Status)
			require.Equal(t, tt.line, r.String())
		})
	}
}

// stubAPI is a TLS server with the guide's health endpoints; status and
// delay are settable per path.
type stubAPI struct {
	srv    *httptest.Server
	mu     sync.Mutex
	status map[string]int
	delay  map[string]time.Duration
}

func newStubAPI(t *testing.T) *stubAPI {
	t.Helper()
	s := &stubAPI{status: map[string]int{}, delay: map[string]time.Duration{}}
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		code, delay := s.status[r.URL.Path], s.delay[r.URL.Path]
		s.mu.Unlock()
		if code == 0 {
			code = http.StatusOK
		}
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
		w.WriteHeader(code)
		_, _ = fmt.Fprintf(w, `{"status":%d}`, code)
	}))
	s.srv.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are expected
	s.srv.StartTLS()
	t.Cleanup(s.srv.Close)
	return s
}

func (s *stubAPI) set(path string, code int, delay time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status[path], s.delay[path] = code, delay
}

// caFile writes the stub's certificate as a CA bundle.
func (s *stubAPI) caFile(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "ca.pem")
	require.NoError(t, os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.srv.Certificate().Raw}), 0o600))
	return p
}

func TestAPICheckOverTLS(t *testing.T) {
	stub := newStubAPI(t)
	client, err := NewAPIClient(APIClientConfig{CAFile: stub.caFile(t), ServerName: "example.com"})
	require.NoError(t, err)
	check := API{BaseURL: stub.srv.URL + "/", Explicit: true, Client: client, Latencies: NewLatencies(6)}
	ctx := t.Context()

	r := check.Run(ctx)
	require.Equal(t, OK, r.Status, r.String())
	require.Regexp(t, `^3 endpoints answered 200; p95 \d+ ms over the last 3 requests$`, r.Summary)

	stub.set("/api/v1/health/redis", http.StatusServiceUnavailable, 0)
	r = check.Run(ctx)
	require.Equal(t, Critical, r.Status)
	require.Contains(t, r.Summary, "/api/v1/health/redis answered 503 Service Unavailable")

	stub.set("/api/v1/health/redis", http.StatusOK, 0)
	stub.set("/api/v1/health", http.StatusOK, 600*time.Millisecond)
	r = check.Run(ctx)
	require.Equal(t, Critical, r.Status, "a 600 ms answer is the p95 of 6")
	// At least 600 ms; a loaded machine may add to it.
	require.Regexp(t, `^3 endpoints answered 200; p95 \d+ ms over the last 6 requests, above 500 ms$`, r.Summary)
	require.Len(t, r.Measurements, 1)
	require.Equal(t, "p95_seconds", r.Measurements[0].Name)
	require.GreaterOrEqual(t, r.Measurements[0].Value, 0.6, r.Summary)

	stub.set("/api/v1/health", http.StatusOK, 0)
	r = check.Run(ctx)
	require.Equal(t, Critical, r.Status, "the slow answer is still among the last 6")
	r = check.Run(ctx)
	require.Equal(t, OK, r.Status, "the slow answer left the ring of 6: %s", r.Summary)

	tctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	stub.set("/api/v1/health/db", http.StatusOK, 5*time.Second)
	r = check.Run(tctx)
	require.Equal(t, Critical, r.Status)
	require.Contains(t, r.Summary, "/api/v1/health/db: no answer in time")
}

func TestAPIClientTLSOptions(t *testing.T) {
	stub := newStubAPI(t)
	ctx := t.Context()

	system, err := NewAPIClient(APIClientConfig{})
	require.NoError(t, err)
	r := API{BaseURL: stub.srv.URL, Explicit: true, Client: system, Latencies: NewLatencies(3)}.Run(ctx)
	require.Equal(t, Critical, r.Status, "the test certificate is not in the system roots")
	require.Contains(t, r.Summary, "certificate")

	insecure, err := NewAPIClient(APIClientConfig{InsecureSkipVerify: true})
	require.NoError(t, err)
	r = API{BaseURL: stub.srv.URL, Explicit: true, Client: insecure, Latencies: NewLatencies(3)}.Run(ctx)
	require.Equal(t, OK, r.Status, r.String())

	wrongName, err := NewAPIClient(APIClientConfig{CAFile: stub.caFile(t), ServerName: "vault.example.net"})
	require.NoError(t, err)
	r = API{BaseURL: stub.srv.URL, Explicit: true, Client: wrongName, Latencies: NewLatencies(3)}.Run(ctx)
	require.Equal(t, Critical, r.Status)
	require.Contains(t, r.Summary, "vault.example.net")

	_, err = NewAPIClient(APIClientConfig{CAFile: filepath.Join(t.TempDir(), "none.pem")})
	require.ErrorContains(t, err, "api CA file: open ")
	empty := filepath.Join(t.TempDir(), "empty.pem")
	require.NoError(t, os.WriteFile(empty, []byte("no pem here"), 0o600))
	_, err = NewAPIClient(APIClientConfig{CAFile: empty})
	require.ErrorContains(t, err, "holds no PEM certificate")
}

func TestAPICheckNothingListening(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	url := "https://" + l.Addr().String()
	require.NoError(t, l.Close())
	client, err := NewAPIClient(APIClientConfig{})
	require.NoError(t, err)

	r := API{BaseURL: url, Client: client, Latencies: NewLatencies(3)}.Run(t.Context())
	require.Equal(t, Unknown, r.Status, r.String())
	require.Contains(t, r.Summary, "set api_url")

	r = API{BaseURL: url, Explicit: true, Client: client, Latencies: NewLatencies(3)}.Run(t.Context())
	require.Equal(t, Critical, r.Status, r.String())
	require.Contains(t, r.Summary, "/api/v1/health: connection refused")
}
