package certs

import (
	"crypto/x509"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/big"
	"slices"
	"strings"
	"time"
)

// Pair is a certificate and its private key, as PEM. Formatting a Pair
// with fmt or slog never shows the key.
type Pair struct {
	// CertPEM is the leaf certificate, optionally followed by its chain
	// (a "fullchain" file), leaf first.
	CertPEM []byte
	// KeyPEM is the leaf's unencrypted private key: "EC PRIVATE KEY" (SEC 1)
	// or "PRIVATE KEY" (PKCS #8), optionally after an "EC PARAMETERS" block.
	KeyPEM []byte
	// ChainPEM, optional, is the chain after the leaf, issuer first; it is
	// appended to any chain in CertPEM (certificates in both count once).
	ChainPEM []byte
}

// String describes the pair without its key.
func (p Pair) String() string {
	return fmt.Sprintf("certs.Pair{cert: %d bytes, chain: %d bytes, key: %d bytes, redacted}",
		len(p.CertPEM), len(p.ChainPEM), len(p.KeyPEM))
}

// Format makes every fmt verb (%v, %+v, %#v, %s, ...) print String.
func (p Pair) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(p.String())) }

// LogValue keeps the key out of slog output.
func (p Pair) LogValue() slog.Value { return slog.StringValue(p.String()) }

// MarshalJSON writes String, so a Pair inside a logged or journaled struct
// does not leak its key either. Pairs travel in protobuf messages, never as
// JSON.
func (p Pair) MarshalJSON() ([]byte, error) { return json.Marshal(p.String()) }

// Info describes a certificate for results and inventory.
type Info struct {
	// Serial is the serial number as lower-case hex bytes joined by colons,
	// as Vault prints it ("1f:a0:..."); empty for no certificate.
	Serial string
	// Subject is the subject's distinguished name.
	Subject string
	// Names are the subject alternative names: DNS names, then IP addresses.
	Names []string
	// NotBefore and NotAfter bound the validity period.
	NotBefore, NotAfter time.Time
}

// Describe returns the Info of cert; a nil cert gives the zero Info.
func Describe(cert *x509.Certificate) Info {
	if cert == nil {
		return Info{}
	}
	return Info{
		Serial:    SerialHex(cert.SerialNumber),
		Subject:   cert.Subject.String(),
		Names:     certNames(cert),
		NotBefore: cert.NotBefore,
		NotAfter:  cert.NotAfter,
	}
}

// SerialHex formats a serial number as Vault does: lower-case hex bytes
// joined by colons.
func SerialHex(n *big.Int) string {
	if n == nil {
		return ""
	}
	b := n.Bytes()
	if len(b) == 0 {
		b = []byte{0}
	}
	parts := make([]string, len(b))
	for i, c := range b {
		parts[i] = fmt.Sprintf("%02x", c)
	}
	s := strings.Join(parts, ":")
	if n.Sign() < 0 {
		s = "-" + s
	}
	return s
}

func certNames(c *x509.Certificate) []string {
	names := slices.Clone(c.DNSNames)
	for _, ip := range c.IPAddresses {
		names = append(names, ip.String())
	}
	return names
}
