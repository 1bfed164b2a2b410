package vault

import (
	"bytes"
	"crypto/x509"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/forlock/fleet/internal/pki"
)

// Certificate is a TLS certificate for a node's nginx, with its private key
// and chain, as Vault handed it out. The key must go to the node and nowhere
// else: never log or store it. Printing a Certificate (fmt, slog) shows only
// the serial, subject and expiry.
type Certificate struct {
	// CertPEM is the leaf certificate, one PEM block.
	CertPEM []byte
	// KeyPEM is the leaf's ECDSA P-256 private key (PEM, SEC 1 or PKCS #8).
	KeyPEM []byte
	// ChainPEM is the issuing CA and its parents, leaf excluded, in order;
	// empty when the source has none. nginx's ssl_certificate file is
	// CertPEM followed by ChainPEM.
	ChainPEM []byte
	// Leaf is CertPEM parsed: subject, DNS names, IP addresses, validity.
	Leaf *x509.Certificate
	// Serial is the leaf's serial as the fleet writes it (pki.SerialHex).
	Serial string
	// NotAfter is when the leaf expires.
	NotAfter time.Time
}

// String shows the certificate without its key.
func (c Certificate) String() string {
	subject := ""
	if c.Leaf != nil {
		subject = c.Leaf.Subject.String()
	}
	return fmt.Sprintf("certificate %s (serial %s, not after %s)", subject, c.Serial, c.NotAfter.UTC().Format(time.RFC3339))
}

// GoString keeps %#v from printing the key.
func (c Certificate) GoString() string { return c.String() }

// LogValue keeps slog from printing the key.
func (c Certificate) LogValue() slog.Value {
	return slog.GroupValue(slog.String("serial", c.Serial), slog.Time("not_after", c.NotAfter))
}

// newCertificate checks a certificate, key and chain from Vault: the
// certificate parses, the key is ECDSA P-256 and belongs to it, and it has
// not expired. certPEM may carry the chain after the leaf (a fullchain.pem);
// those certificates go first in ChainPEM. where names the source in errors.
func newCertificate(where string, certPEM, keyPEM, chainPEM []byte, now time.Time) (Certificate, error) {
	certs, err := pki.ParseCertsPEM(certPEM)
	if err != nil {
		return Certificate{}, fmt.Errorf("%s: certificate: %w: %w", where, err, ErrInvalid)
	}
	leaf := certs[0]
	if len(bytes.TrimSpace(chainPEM)) > 0 {
		extra, err := pki.ParseCertsPEM(chainPEM)
		if err != nil {
			return Certificate{}, fmt.Errorf("%s: chain: %w: %w", where, err, ErrInvalid)
		}
		certs = append(certs, extra...)
	}
	key, err := pki.ParseKeyPEM(keyPEM)
	if err != nil {
		// The parse error names the problem, never the key bytes.
		return Certificate{}, fmt.Errorf("%s: %w: the fleet's nginx certificates need an ECDSA P-256 key: %w", where, err, ErrInvalid)
	}
	if !key.PublicKey.Equal(leaf.PublicKey) {
		return Certificate{}, fmt.Errorf("%s: the private key does not belong to the certificate (serial %s): put the matching pair there: %w",
			where, pki.SerialHex(leaf), ErrInvalid)
	}
	if now.After(leaf.NotAfter) {
		return Certificate{}, fmt.Errorf("%s: the certificate (serial %s) expired on %s: renew it: %w",
			where, pki.SerialHex(leaf), leaf.NotAfter.UTC().Format(time.RFC3339), ErrInvalid)
	}
	ders := make([][]byte, 0, len(certs)-1)
	for _, c := range certs[1:] {
		// A fullchain.pem and a ca_chain field may both carry the
		// intermediate: keep each certificate once.
		if !slices.ContainsFunc(ders, func(d []byte) bool { return bytes.Equal(d, c.Raw) }) && !bytes.Equal(c.Raw, leaf.Raw) {
			ders = append(ders, c.Raw)
		}
	}
	return Certificate{
		CertPEM:  pki.EncodeCertPEM(leaf.Raw),
		KeyPEM:   bytes.Clone(keyPEM),
		ChainPEM: pki.EncodeCertPEM(ders...),
		Leaf:     leaf,
		Serial:   pki.SerialHex(leaf),
		NotAfter: leaf.NotAfter,
	}, nil
}
