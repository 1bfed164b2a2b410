package checks

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"
)

// APIEndpoints are the operations guide's health endpoints: the API
// itself, its database and its Redis.
var APIEndpoints = []string{"/api/v1/health", "/api/v1/health/db", "/api/v1/health/redis"}

// API checks the Forlock API's health endpoints over HTTPS (through the
// node's nginx, or directly) and the p95 of recent response times.
type API struct {
	// BaseURL is the API's base, e.g. https://127.0.0.1.
	BaseURL string
	// Explicit says BaseURL was configured rather than defaulted. Nothing
	// listening at a defaulted URL is UNKNOWN (perhaps no Forlock here;
	// the container checks catch a stopped nginx); at a configured one it
	// is CRITICAL.
	Explicit bool
	// Client sends the requests; its transport carries the TLS settings.
	Client *http.Client
	// Latencies keeps the recent response times across runs.
	Latencies *Latencies
}

// Name is "api".
func (API) Name() string { return "api" }

// Probe is the outcome of one request to a health endpoint.
type Probe struct {
	// Path is the endpoint, e.g. /api/v1/health/db.
	Path string
	// Status is the HTTP status code, 0 when no response came.
	Status int
	// Latency is the time to the response headers.
	Latency time.Duration
	// Err is why no response came.
	Err error
}

// Run requests every endpoint concurrently, records the response times and
// judges the lot.
func (a API) Run(ctx context.Context) Result {
	probes := make([]Probe, len(APIEndpoints))
	var wg sync.WaitGroup
	for i, path := range APIEndpoints {
		wg.Go(func() { probes[i] = a.Probe(ctx, path) })
	}
	wg.Wait()
	for _, p := range probes {
		if p.Status != 0 || errors.Is(p.Err, context.DeadlineExceeded) {
			a.Latencies.Add(p.Latency)
		}
	}
	p95, n := a.Latencies.P95()
	return EvaluateAPI(a.BaseURL, a.Explicit, probes, p95, n)
}

// Probe requests one endpoint once; it records no response time.
func (a API) Probe(ctx context.Context, path string) Probe {
	p := Probe{Path: path}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(a.BaseURL, "/")+path, nil)
	if err != nil {
		p.Err = err
		return p
	}
	req.Header.Set("User-Agent", "forlock-agent")
	start := time.Now()
	resp, err := a.Client.Do(req)
	p.Latency = time.Since(start)
	if err != nil {
		p.Err = err
		return p
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	p.Status = resp.StatusCode
	return p
}

// EvaluateAPI judges the probes of one run and the p95 of the last n
// response times: CRITICAL if an endpoint did not answer 200 or p95 is
// above 500 ms, WARN if p95 is above 200 ms, else OK. When nothing listens
// at all and the URL was not configured, it is UNKNOWN.
func EvaluateAPI(baseURL string, explicit bool, probes []Probe, p95 time.Duration, n int) Result {
	r := Result{Name: "api"}
	if !explicit && len(probes) > 0 && allRefused(probes) {
		r.Status = Unknown
		r.Summary = fmt.Sprintf("nothing listens at %s (the default): set api_url to the node's Forlock API", baseURL)
		return r
	}
	var bad []string
	for _, p := range probes {
		switch {
		case p.Err != nil:
			bad = append(bad, fmt.Sprintf("%s: %s", p.Path, describeHTTPError(p.Err)))
		case p.Status != http.StatusOK:
			bad = append(bad, fmt.Sprintf("%s answered %d %s", p.Path, p.Status, http.StatusText(p.Status)))
		}
	}
	latency := fmt.Sprintf("p95 %s over the last %d requests", roundMS(p95), n)
	if n > 0 {
		r.Measurements = []Measurement{{Name: "p95_seconds", Value: p95.Seconds()}}
	}
	switch {
	case len(bad) > 0:
		r.Status = Critical
		r.Summary = strings.Join(bad, "; ") + "; " + latency
		return r
	case p95 > APILatencyCritical:
		r.Status = Critical
		latency += fmt.Sprintf(", above %s", roundMS(APILatencyCritical))
	case p95 > APILatencyWarn:
		r.Status = Warn
		latency += fmt.Sprintf(", above the %s target", roundMS(APILatencyWarn))
	}
	r.Summary = fmt.Sprintf("%d endpoints answered 200; %s", len(probes), latency)
	return r
}

func allRefused(probes []Probe) bool {
	for _, p := range probes {
		if !errors.Is(p.Err, syscall.ECONNREFUSED) {
			return false
		}
	}
	return true
}

// describeHTTPError shortens a client error to what went wrong.
func describeHTTPError(err error) string {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "no answer in time"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	}
	if ue := (*url.Error)(nil); errors.As(err, &ue) {
		return ue.Err.Error() // without the "Get "https://…":" prefix
	}
	return err.Error()
}

// roundMS formats d in whole milliseconds, "0 ms" for sub-millisecond.
func roundMS(d time.Duration) string { return fmt.Sprintf("%d ms", d.Milliseconds()) }

// APIClientConfig says how to reach the API over TLS.
type APIClientConfig struct {
	// CAFile is a PEM bundle that verifies the API's certificate (the
	// node's CA); empty means the system roots.
	CAFile string
	// ServerName is the name to verify the certificate against, when it
	// differs from the URL's host (e.g. the node's domain while the URL is
	// https://127.0.0.1).
	ServerName string
	// InsecureSkipVerify accepts any certificate.
	InsecureSkipVerify bool
}

// NewAPIClient returns an HTTP client for the API check. It reads CAFile
// once. It follows no redirects: a health endpoint answers itself.
func NewAPIClient(cfg APIClientConfig) (*http.Client, error) {
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: cfg.ServerName, InsecureSkipVerify: cfg.InsecureSkipVerify} //nolint:gosec // skipping verification is an explicit operator choice
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("api CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("api CA file %s holds no PEM certificate", cfg.CAFile)
		}
		tlsCfg.RootCAs = pool
	}
	tr := &http.Transport{
		TLSClientConfig:     tlsCfg,
		TLSHandshakeTimeout: 3 * time.Second,
		DisableKeepAlives:   true, // a fresh connection per run: nothing lingers between runs
		DisableCompression:  true,
		ForceAttemptHTTP2:   true,
	}
	return &http.Client{
		Transport:     tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}, nil
}
