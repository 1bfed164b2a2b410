package checks

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"syscall"
	"time"

	"github.com/forlock/fleet/agent/internal/certs"
	"github.com/forlock/fleet/internal/pki"
)

// Thresholds of the operations guide for the TLS certificate: rotate when
// fewer than 30 days remain, alert below 14.
const (
	CertWarnLeft     = 30 * 24 * time.Hour // WARN at 30 days left or fewer
	CertCriticalLeft = 14 * 24 * time.Hour // CRITICAL below 14 days left
)

// Certificate checks the certificate the node's nginx serves, read by a
// TLS handshake each run. The Suite runs it and puts the certificate it
// read into the report.
type Certificate struct {
	// Addr is where nginx's 443 is reachable, host:port.
	Addr string
	// ServerName is sent as SNI; empty sends none.
	ServerName string
	// Explicit says Addr was configured (or derived from a configured
	// API URL) rather than defaulted. Nothing listening at a defaulted
	// address is UNKNOWN (perhaps no Forlock here); at a configured one,
	// and any other failed handshake, it is CRITICAL.
	Explicit bool
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Name is "certificate".
func (Certificate) Name() string { return "certificate" }

// Run handshakes with nginx and judges the certificate it serves.
func (c Certificate) Run(ctx context.Context) Result {
	r, _ := c.Read(ctx)
	return r
}

// Read handshakes with nginx and returns the judgement and the served
// leaf certificate (nil when the handshake failed).
func (c Certificate) Read(ctx context.Context) (Result, *x509.Certificate) {
	cert, err := certs.Served(ctx, c.Addr, c.ServerName)
	now := time.Now
	if c.Now != nil {
		now = c.Now
	}
	return EvaluateCertificate(c.Addr, c.Explicit, cert, err, now()), cert
}

// EvaluateCertificate judges the certificate served at addr, or the
// handshake error err, at now: CRITICAL when it expires in less than 14
// days, has expired, is not valid yet, or the handshake failed; WARN with
// 14 to 30 days left; OK with more. Nothing listening at a defaulted
// address is UNKNOWN.
func EvaluateCertificate(addr string, explicit bool, cert *x509.Certificate, err error, now time.Time) Result {
	r := Result{Name: "certificate"}
	switch {
	case err != nil && !explicit && errors.Is(err, syscall.ECONNREFUSED):
		r.Status = Unknown
		r.Summary = fmt.Sprintf("nothing listens at %s (the default): set tls_addr to where the node's nginx serves 443", addr)
		return r
	case err != nil:
		r.Status = Critical
		r.Summary = fmt.Sprintf("%v: is nginx up and serving TLS there? (tls_addr)", err)
		return r
	case cert == nil:
		r.Status = Critical
		r.Summary = fmt.Sprintf("%s sent no certificate", addr)
		return r
	}
	what := fmt.Sprintf("serial %s (%s)", pki.SerialHex(cert), cert.Subject.String())
	end := cert.NotAfter.UTC().Format(time.RFC3339)
	left := cert.NotAfter.Sub(now)
	switch {
	case now.Before(cert.NotBefore):
		r.Status = Critical
		r.Summary = fmt.Sprintf("%s is not valid before %s: check this host's clock, or rotate it", what, cert.NotBefore.UTC().Format(time.RFC3339))
	case left <= 0:
		r.Status = Critical
		r.Summary = fmt.Sprintf("%s expired at %s (%s ago): rotate it now (forlockctl certs rotate)", what, end, days(-left))
	case left < CertCriticalLeft:
		r.Status = Critical
		r.Summary = fmt.Sprintf("%s expires %s, %s left: rotate it now (forlockctl certs rotate)", what, end, days(left))
	case left <= CertWarnLeft:
		r.Status = Warn
		r.Summary = fmt.Sprintf("%s expires %s, %s left: rotate it (forlockctl certs rotate)", what, end, days(left))
	default:
		r.Summary = fmt.Sprintf("%s expires %s, %s left", what, end, days(left))
	}
	return r
}

// days formats d in whole days, rounded down ("1 day", "19 days"), or in
// hours under a day, so the figure never looks better than the verdict.
func days(d time.Duration) string {
	switch n := int(d / (24 * time.Hour)); n {
	case 0:
		return fmt.Sprintf("%dh", int(d/time.Hour))
	case 1:
		return "1 day"
	default:
		return fmt.Sprintf("%d days", n)
	}
}
