package agent

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/forlock/fleet/internal/buildinfo"
)

// rpcTimeout bounds each unary call (Enroll, RenewCertificate).
const rpcTimeout = 30 * time.Second

// maxGoodbyeDelay caps the reconnect delay a control plane may ask for.
const maxGoodbyeDelay = time.Hour

// dial returns a client connection to the control plane that verifies it
// against roots with TLS 1.3. With mutual set, it offers the agent's
// current client certificate, read at each handshake so that a renewed
// certificate serves new connections at once.
func (a *Agent) dial(roots *x509.CertPool, mutual bool) (*grpc.ClientConn, error) {
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS13,
		RootCAs:    roots,
		ServerName: a.serverName,
	}
	if mutual {
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return a.cert.Load(), nil
		}
	}
	conn, err := grpc.NewClient(a.cfg.ControlPlane,
		grpc.WithTransportCredentials(credentials.NewTLS(cfg)),
		grpc.WithUserAgent("forlock-agent/"+buildinfo.Version()),
	)
	if err != nil {
		return nil, fmt.Errorf("control plane %s: %w", a.cfg.ControlPlane, err)
	}
	return conn, nil
}

// isRefused reports whether err means the control plane refused the
// node's identity: an Unauthenticated or PermissionDenied status, or a TLS
// alert about our certificate (a control plane may refuse a retired
// certificate already in the handshake).
func isRefused(err error) bool {
	if err == nil {
		return false
	}
	switch status.Code(err) {
	case codes.Unauthenticated, codes.PermissionDenied:
		return true
	case codes.Unavailable:
		msg := status.Convert(err).Message()
		_, alert, ok := strings.Cut(msg, "remote error: tls: ")
		return ok && (strings.Contains(alert, "certificate") || strings.HasPrefix(alert, "access denied"))
	}
	return false
}

// goodbyeDelay is the wait a control plane's goodbye asked for, capped,
// plus up to a tenth more so that a fleet told to come back in a minute
// does not come back in the same millisecond.
func goodbyeDelay(d time.Duration) time.Duration {
	d = min(d, maxGoodbyeDelay)
	return d + time.Duration(rand.Int64N(int64(d/10)+1)) //nolint:gosec // jitter needs no secrecy
}
