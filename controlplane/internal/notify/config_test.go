package notify

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/forlock/fleet/controlplane/internal/metrics"
)

func TestConfigCheck(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string // "" = valid
	}{
		{"none", Config{}, ""},
		{"https", Config{AlertmanagerURLs: []string{"https://am.internal:9093"}, WebhookURLs: []string{"https://hooks.example/x"}}, ""},
		{"loopback http", Config{AlertmanagerURLs: []string{"http://127.0.0.1:9093", "http://localhost:9093", "http://[::1]:9093"}}, ""},
		{"remote http refused", Config{WebhookURLs: []string{"http://hooks.example/secret"}},
			"webhook URL for hooks.example is plain http: alerts (and a webhook's token) would travel in clear; use https://, or set alerting.allow_insecure_http: true"},
		{"remote http allowed", Config{WebhookURLs: []string{"http://hooks.example/x"}, AllowInsecureHTTP: true}, ""},
		{"user info", Config{AlertmanagerURLs: []string{"https://admin:pw@am.internal"}}, "alertmanager URL for am.internal holds user info"},
		{"not a URL", Config{WebhookURLs: []string{"hooks.example/x"}}, "webhook URL is not an http:// or https:// URL with a host"},
		{"scheme", Config{WebhookURLs: []string{"ftp://hooks.example/x"}}, "webhook URL is not an http:// or https:// URL with a host"},
		{"fragment", Config{WebhookURLs: []string{"https://hooks.example/x#y"}}, "has a #fragment"},
		{"too long", Config{WebhookURLs: []string{"https://h/" + strings.Repeat("a", maxURLLen)}}, "longer than 2048 bytes"},
		{"resend too short", Config{ResendInterval: time.Millisecond}, "resend interval 1ms: must be 1s to 1h"},
		{"token without webhook", Config{WebhookTokenFile: "/etc/t", AlertmanagerURLs: []string{"https://am"}}, "a webhook token file is set but no webhook URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Check()
			if tt.want == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tt.want)
			require.NotContains(t, err.Error(), "secret", "an error never shows a URL's path")
		})
	}
}

func TestCAFileMissing(t *testing.T) {
	_, err := New(Config{CAFile: "/nonexistent/ca.pem"}, nil, nil)
	require.ErrorContains(t, err, "alerting CA file")
}

// FuzzCheckURL: any string is accepted or refused without panic, and an
// error never repeats the URL's path (it may hold a token).
func FuzzCheckURL(f *testing.F) {
	for _, s := range []string{"https://a/b", "http://127.0.0.1:1/x", "http://u:p@h/tokenpath", "://", "https://[::1", "http://h/%zz", "http://h.example/zzsecretzz"} {
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, raw string, allow bool) {
		err := checkURL("webhook", raw, allow)
		if err != nil && strings.Contains(raw, "/zzsecretzz") {
			require.NotContains(t, err.Error(), "zzsecretzz")
		}
	})
}

// FuzzDecodeRecord: an outbox entry that does not decode is refused, never
// a panic; one that does keeps its id.
func FuzzDecodeRecord(f *testing.F) {
	f.Add([]byte(`{"id":"x","alert":{"name":"a"},"at":"2026-12-04T03:00:00Z"}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := decodeRecord(data)
		if err == nil {
			require.NotEmpty(t, r.ID)
		}
	})
}

var _ Metrics = (*metrics.Metrics)(nil) // the control plane's metrics fit
