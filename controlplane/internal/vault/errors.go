package vault

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/hashicorp/vault/api"
)

// Errors that callers can test with errors.Is. Every error this package
// returns for a failed Vault call wraps at most one of them, and its message
// says what to do; none carries a token, secret ID or key.
var (
	// ErrSealed means Vault answered that it is sealed: an operator must
	// unseal it.
	ErrSealed = errors.New("vault is sealed")
	// ErrUnreachable means Vault did not answer: refused connection, DNS,
	// TLS or a timeout.
	ErrUnreachable = errors.New("vault is unreachable")
	// ErrForbidden means Vault refused the token for a path (HTTP 403): the
	// token's policies lack a capability, or the token expired or was revoked.
	ErrForbidden = errors.New("vault forbids the request")
	// ErrNotFound means nothing is stored at a path, or a field is missing.
	ErrNotFound = errors.New("not found in vault")
	// ErrInvalid means Vault returned something unusable: a certificate that
	// does not parse, a key that is not ECDSA P-256 or does not match, a
	// Transit key that cannot encrypt.
	ErrInvalid = errors.New("unusable answer from vault")
	// ErrNotConfigured means a feature was used whose mount, role or key is
	// not set in the Config.
	ErrNotConfigured = errors.New("not configured")
)

// vaultError is a failed Vault call: a message written for the operator, the
// sentinel it belongs to, and the cause (for errors.As, e.g. to
// *api.ResponseError).
type vaultError struct {
	msg   string
	kind  error
	cause error
}

func (e *vaultError) Error() string { return e.msg }

func (e *vaultError) Unwrap() []error {
	var errs []error
	if e.kind != nil {
		errs = append(errs, e.kind)
	}
	if e.cause != nil {
		errs = append(errs, e.cause)
	}
	return errs
}

// classify turns the error of a call doing op ("read", "update", ...) on path
// into a vaultError with advice. It leaves context.Canceled alone: the caller
// gave up, Vault did nothing wrong.
func (c *Client) classify(op, path string, err error) error {
	if err == nil {
		return nil
	}
	var ve *vaultError
	if errors.As(err, &ve) {
		return err
	}
	addr := c.cfg.Address
	var re *api.ResponseError
	switch {
	case errors.As(err, &re):
		detail := details(re.Errors)
		switch {
		case re.StatusCode == http.StatusServiceUnavailable && mentions(re.Errors, "sealed"):
			return &vaultError{
				msg:  fmt.Sprintf("%s %s: vault at %s is sealed: unseal it (vault operator unseal) and retry", op, path, addr),
				kind: ErrSealed, cause: err,
			}
		case re.StatusCode == http.StatusForbidden:
			return &vaultError{
				msg: fmt.Sprintf("%s %s: vault at %s forbids path %s (%s): grant the policy of the control plane's token the %q capability on %s, or give it a fresh token if it expired",
					op, path, addr, path, detail, capability(op), path),
				kind: ErrForbidden, cause: err,
			}
		case re.StatusCode == http.StatusNotFound:
			return &vaultError{
				msg:  fmt.Sprintf("%s %s: vault at %s has nothing at %s (%s): check the mount and path", op, path, addr, path, detail),
				kind: ErrNotFound, cause: err,
			}
		case re.StatusCode == http.StatusServiceUnavailable || re.StatusCode == http.StatusBadGateway || re.StatusCode == http.StatusGatewayTimeout:
			return &vaultError{
				msg:  fmt.Sprintf("%s %s: vault at %s is not serving (HTTP %d: %s): check that it is unsealed, active and reachable", op, path, addr, re.StatusCode, detail),
				kind: ErrUnreachable, cause: err,
			}
		default:
			return &vaultError{
				msg:   fmt.Sprintf("%s %s: vault at %s answered HTTP %d: %s", op, path, addr, re.StatusCode, detail),
				cause: err,
			}
		}
	case errors.Is(err, context.Canceled):
		return fmt.Errorf("%s %s: %w", op, path, err)
	case errors.Is(err, context.DeadlineExceeded) || isTimeout(err):
		return &vaultError{
			msg:  fmt.Sprintf("%s %s: vault at %s did not answer within %s: check that it is running and reachable", op, path, addr, c.cfg.RequestTimeout),
			kind: ErrUnreachable, cause: err,
		}
	case isTLS(err):
		return &vaultError{
			msg:  fmt.Sprintf("%s %s: vault at %s: TLS: %v: check that the CA file (%s) holds the CA that signed Vault's certificate", op, path, addr, rootCause(err), orSystem(c.cfg.CAFile)),
			kind: ErrUnreachable, cause: err,
		}
	case isNet(err):
		return &vaultError{
			msg:  fmt.Sprintf("%s %s: vault at %s is unreachable (%v): check that it is running and the address is right", op, path, addr, rootCause(err)),
			kind: ErrUnreachable, cause: err,
		}
	}
	return fmt.Errorf("%s %s at vault %s: %w", op, path, addr, err)
}

// details joins Vault's error strings on one line, without the multierror
// decoration ("1 error occurred:\n\t* permission denied\n\n").
func details(errs []string) string {
	var out []string
	for _, e := range errs {
		for line := range strings.SplitSeq(e, "\n") {
			line = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "* "))
			if line == "" || strings.HasSuffix(line, "error occurred:") || strings.HasSuffix(line, "errors occurred:") {
				continue
			}
			out = append(out, line)
		}
	}
	return strings.Join(out, "; ")
}

// capability is the policy capability that an operation needs.
func capability(op string) string {
	switch op {
	case "read", "list", "update", "create", "delete":
		return op
	case "login":
		return "update"
	}
	return "update"
}

func mentions(errs []string, word string) bool {
	for _, e := range errs {
		if strings.Contains(strings.ToLower(e), word) {
			return true
		}
	}
	return false
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func isNet(err error) bool {
	var ue *url.Error
	var oe *net.OpError
	var de *net.DNSError
	return errors.As(err, &ue) || errors.As(err, &oe) || errors.As(err, &de)
}

func isTLS(err error) bool {
	var ua x509.UnknownAuthorityError
	var hn x509.HostnameError
	var ci x509.CertificateInvalidError
	var tv *tls.CertificateVerificationError
	return errors.As(err, &ua) || errors.As(err, &hn) || errors.As(err, &ci) || errors.As(err, &tv)
}

// rootCause is the innermost error of a *url.Error, whose message repeats the
// URL and method.
func rootCause(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

func orSystem(caFile string) string {
	if caFile == "" {
		return "none set: the system roots"
	}
	return caFile
}
