package certs

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"time"
)

// Served returns the leaf certificate the TLS server at addr (host:port)
// presents for serverName (empty: no SNI) right now. It does not verify
// the certificate: it reports what is served, for inventory and expiry
// checks and to confirm an install. A ctx without a deadline gets
// DefaultHandshakeTimeout.
func Served(ctx context.Context, addr, serverName string) (*x509.Certificate, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultHandshakeTimeout)
		defer cancel()
	}
	d := tls.Dialer{Config: &tls.Config{
		ServerName: serverName,
		MinVersion: tls.VersionTLS12,
		// Served reports whichever certificate the server presents; Install
		// compares it byte for byte with the one it installed.
		InsecureSkipVerify: true, //nolint:gosec // reading the served certificate, not trusting the peer
	}}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("tls handshake with %s: %w", addr, err)
	}
	defer func() { _ = conn.Close() }()
	tc, ok := conn.(*tls.Conn)
	if !ok {
		return nil, fmt.Errorf("tls handshake with %s: unexpected connection type %T", addr, conn)
	}
	certs := tc.ConnectionState().PeerCertificates
	if len(certs) == 0 {
		return nil, fmt.Errorf("tls handshake with %s: the server sent no certificate", addr)
	}
	return certs[0], nil
}

// confirm handshakes with nginx until it serves exactly want, steadily, and
// returns how long that took. nginx reloads asynchronously: its master starts
// the new workers and only about 100 ms later tells the old ones to stop
// accepting (ngx_master_process_cycle), so for a while a handshake may reach
// either generation. One handshake showing want proves nothing about the
// next one; want must be served for confirmSettle with no handshake in
// between showing anything else.
func (i *installer) confirm(ctx context.Context, want *x509.Certificate) (time.Duration, error) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, i.cfg.ConfirmTimeout)
	defer cancel()
	var last error
	var steady time.Time // when want was first served with nothing else since
	for delay := 25 * time.Millisecond; ; {
		hctx, hcancel := context.WithTimeout(ctx, i.cfg.HandshakeTimeout)
		got, err := Served(hctx, i.cfg.Addr, i.cfg.ServerName)
		hcancel()
		switch {
		case err != nil:
			last, steady = err, time.Time{}
		case got.Equal(want):
			if steady.IsZero() {
				steady = time.Now()
			}
			if time.Since(steady) >= confirmSettle {
				return time.Since(start), nil
			}
		default:
			last, steady = fmt.Errorf("%s serves serial %s (%q), not serial %s", i.cfg.Addr, SerialHex(got.SerialNumber), got.Subject.String(), SerialHex(want.SerialNumber)), time.Time{}
		}
		if steady.IsZero() {
			delay = min(2*delay, 500*time.Millisecond)
		} else {
			delay = confirmSettle / 10
		}
		select {
		case <-ctx.Done():
			if last == nil {
				last = fmt.Errorf("%s served serial %s for only %s", i.cfg.Addr, SerialHex(want.SerialNumber), time.Since(steady).Round(time.Millisecond))
			}
			return time.Since(start), fmt.Errorf("not confirmed within %s: %w (%w)", time.Since(start).Round(time.Millisecond), last, ctx.Err())
		case <-time.After(delay):
		}
	}
}

// confirmSettle is how long nginx must serve only the new certificate before
// a rotation is confirmed: several times the 100 ms between nginx starting
// its new workers and stopping the old ones accepting.
const confirmSettle = 500 * time.Millisecond
