package notify

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/forlock/fleet/internal/loopback"
)

// Defaults for the Config fields left zero.
const (
	// DefaultResendInterval is below Alertmanager's resolve_timeout (5m).
	DefaultResendInterval = time.Minute
	DefaultTimeout        = 10 * time.Second
	DefaultMaxQueue       = 10_000
	minBackoff            = time.Second
	maxBackoff            = 5 * time.Minute
	maxURLLen             = 2048
)

// Config says where notifications go.
type Config struct {
	// AlertmanagerURLs are Alertmanager base URLs, e.g.
	// https://am.internal:9093; each gets every notification.
	AlertmanagerURLs []string
	// WebhookURLs receive one JSON POST per notification.
	WebhookURLs []string
	// WebhookTokenFile holds a bearer token the webhooks get (mode 0600),
	// read at every post; empty: none.
	WebhookTokenFile string
	// CAFile is a PEM bundle verifying the receivers' HTTPS certificates;
	// empty: the system roots.
	CAFile string
	// ResendInterval is how often firing alerts are posted to Alertmanager
	// again (default 1m).
	ResendInterval time.Duration
	// AllowInsecureHTTP accepts http:// URLs that are not loopback.
	AllowInsecureHTTP bool
	// Timeout bounds each POST (default 10s).
	Timeout time.Duration
	// MaxQueue caps each receiver's outbox (default 10,000).
	MaxQueue int
	// Metrics counts notifications and queue lengths; nil: none.
	Metrics Metrics

	// minBackoff and maxBackoff bound the retry backoff (1s, 5m); tests
	// shorten them.
	minBackoff, maxBackoff time.Duration
}

// Metrics is what the notifier reports; *metrics.Metrics implements it.
type Metrics interface {
	// Notifications counts c notifications of an outcome: sent, failed
	// (will retry), dropped, overflow, resent.
	Notifications(kind, outcome string, c int)
	// NotificationQueue sets the entries waiting for receivers of a kind.
	NotificationQueue(kind string, n int)
}

// Enabled reports whether any receiver is configured.
func (c Config) Enabled() bool { return len(c.AlertmanagerURLs)+len(c.WebhookURLs) > 0 }

// Check validates c; the error lists every problem.
func (c Config) Check() error {
	_, err := c.withDefaults()
	return err
}

func (c Config) withDefaults() (Config, error) {
	if c.ResendInterval == 0 {
		c.ResendInterval = DefaultResendInterval
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.MaxQueue == 0 {
		c.MaxQueue = DefaultMaxQueue
	}
	if c.minBackoff == 0 {
		c.minBackoff = minBackoff
	}
	if c.maxBackoff == 0 {
		c.maxBackoff = maxBackoff
	}
	var errs []error
	for _, u := range c.AlertmanagerURLs {
		errs = append(errs, checkURL("alertmanager", u, c.AllowInsecureHTTP))
	}
	for _, u := range c.WebhookURLs {
		errs = append(errs, checkURL("webhook", u, c.AllowInsecureHTTP))
	}
	if c.ResendInterval < time.Second || c.ResendInterval > time.Hour {
		errs = append(errs, fmt.Errorf("resend interval %s: must be 1s to 1h, and below Alertmanager's resolve_timeout (5m by default)", c.ResendInterval))
	}
	if c.Timeout < 0 || c.MaxQueue < 0 {
		errs = append(errs, errors.New("timeout and queue cap must not be negative"))
	}
	if c.WebhookTokenFile != "" && len(c.WebhookURLs) == 0 {
		errs = append(errs, errors.New("a webhook token file is set but no webhook URL"))
	}
	if err := errors.Join(errs...); err != nil {
		return Config{}, fmt.Errorf("alerting: %w", err)
	}
	return c, nil
}

// checkURL accepts an absolute http(s) URL without user info; plain http
// only to loopback unless allowed. Errors show the host, not the URL: its
// path may hold a token.
func checkURL(kind, raw string, allowHTTP bool) error {
	if len(raw) > maxURLLen {
		return fmt.Errorf("%s URL longer than %d bytes", kind, maxURLLen)
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Opaque != "" {
		return fmt.Errorf("%s URL is not an http:// or https:// URL with a host", kind)
	}
	if u.User != nil {
		return fmt.Errorf("%s URL for %s holds user info: a password in a URL leaks into logs and snapshots; for webhooks use alerting.webhook_token_file", kind, u.Host)
	}
	if u.Fragment != "" {
		return fmt.Errorf("%s URL for %s has a #fragment, which is never sent", kind, u.Host)
	}
	if u.Scheme == "http" && !loopback.Host(u.Hostname()) && !allowHTTP {
		return fmt.Errorf("%s URL for %s is plain http: alerts (and a webhook's token) would travel in clear; use https://, or set alerting.allow_insecure_http: true if this network is trusted", kind, u.Host)
	}
	return nil
}

// httpClient makes the client every receiver shares: the CA file's roots,
// no redirects (they could carry the token to another host), no cookies.
func (c Config) httpClient() (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("alerting CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("alerting CA file %s holds no PEM certificate", c.CAFile)
		}
		tr.TLSClientConfig.RootCAs = pool
	}
	return &http.Client{
		Transport:     tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}, nil
}
