package certs

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Limits on what Validate accepts.
const (
	// MaxPEM bounds each of Pair's fields.
	MaxPEM = 1 << 20
	// MaxChain bounds the chain certificates after the leaf.
	MaxChain = 8
)

// ErrInvalid is wrapped by every error of Validate: the pair itself is
// unusable, and installing it again will fail the same way.
var ErrInvalid = errors.New("invalid certificate")

// parsed is a validated pair.
type parsed struct {
	leaf  *x509.Certificate
	chain []*x509.Certificate
	key   *pem.Block // type and DER only, no headers
}

// certFile is what nginx's ssl_certificate gets: leaf, then chain.
func (p *parsed) certFile() []byte {
	var b bytes.Buffer
	for _, c := range append([]*x509.Certificate{p.leaf}, p.chain...) {
		_ = pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	return b.Bytes()
}

// keyFile is what nginx's ssl_certificate_key gets.
func (p *parsed) keyFile() []byte { return pem.EncodeToMemory(p.key) }

// Validate checks that pair can be installed at time now and returns its
// leaf certificate. It checks that:
//   - the PEM holds one leaf (plus an optional chain) and one private key;
//   - the key is an unencrypted ECDSA P-256 key, as the operations guide
//     requires, and matches the leaf's public key;
//   - the leaf is valid at now (not expired, not yet valid) and allows TLS
//     server use;
//   - the leaf covers every entry of names (DNS name, wildcard or IP);
//   - when a chain is given: each certificate was issued by the next one,
//     and the whole chain verifies at now up to the chain's root (its
//     self-signed top, or its top certificate when the root is left out,
//     as in a certbot fullchain).
//
// Errors wrap ErrInvalid, say what is wrong and never contain key material.
func Validate(pair Pair, names []string, now time.Time) (*x509.Certificate, error) {
	p, err := parse(pair, names, now)
	if err != nil {
		return nil, err
	}
	return p.leaf, nil
}

func parse(pair Pair, names []string, now time.Time) (*parsed, error) {
	for _, f := range []struct {
		what string
		data []byte
	}{{"certificate PEM", pair.CertPEM}, {"key PEM", pair.KeyPEM}, {"chain PEM", pair.ChainPEM}} {
		if len(f.data) > MaxPEM {
			return nil, invalid("%s is %d bytes, more than %d: give the leaf, its chain and its key only", f.what, len(f.data), MaxPEM)
		}
	}
	certs, err := parseCerts("certificate PEM", pair.CertPEM)
	if err != nil {
		return nil, err
	}
	if len(certs) == 0 {
		return nil, invalid("certificate PEM holds no CERTIFICATE block")
	}
	more, err := parseCerts("chain PEM", pair.ChainPEM)
	if err != nil {
		return nil, err
	}
	p := &parsed{leaf: certs[0]}
	for _, c := range append(certs[1:], more...) {
		if c.Equal(p.leaf) || slices.ContainsFunc(p.chain, c.Equal) {
			continue
		}
		p.chain = append(p.chain, c)
	}
	if len(p.chain) > MaxChain {
		return nil, invalid("chain has %d certificates, more than %d", len(p.chain), MaxChain)
	}
	leaf := p.leaf
	if err := checkKeyType("certificate's public key", leaf.PublicKey); err != nil {
		return nil, err
	}
	key, block, err := parseKey(pair.KeyPEM)
	if err != nil {
		return nil, err
	}
	if !key.PublicKey.Equal(leaf.PublicKey) {
		return nil, invalid("private key does not match the certificate (serial %s, subject %q): give the key the certificate was issued for",
			SerialHex(leaf.SerialNumber), leaf.Subject.String())
	}
	p.key = block
	if err := checkTime(leaf, now); err != nil {
		return nil, err
	}
	if !serverAuth(leaf) {
		return nil, invalid("certificate (serial %s) does not allow TLS server use (extended key usage %v)", SerialHex(leaf.SerialNumber), leaf.ExtKeyUsage)
	}
	if err := checkNames(leaf, names); err != nil {
		return nil, err
	}
	if err := checkChain(leaf, p.chain, now); err != nil {
		return nil, err
	}
	return p, nil
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
}

// parseCerts parses every PEM block of data, which must all be
// certificates. Text around the blocks is ignored, as OpenSSL does.
func parseCerts(what string, data []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for i := 1; ; i++ {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			return nil, invalid("%s: block %d is %q, want CERTIFICATE", what, i, blockType(b))
		}
		if len(out) == 1+MaxChain {
			return nil, invalid("%s holds more than %d certificates", what, 1+MaxChain)
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, invalid("%s: certificate %d: %v", what, i, err)
		}
		out = append(out, c)
	}
	if len(out) == 0 && len(bytes.TrimSpace(data)) > 0 {
		return nil, invalid("%s holds no PEM block: want -----BEGIN CERTIFICATE----- blocks", what)
	}
	return out, nil
}

// parseKey parses the one private key block of data.
func parseKey(data []byte) (*ecdsa.PrivateKey, *pem.Block, error) {
	var found *pem.Block
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		switch {
		case b.Type == "EC PARAMETERS":
			continue
		case strings.Contains(b.Type, "ENCRYPTED") || b.Headers["Proc-Type"] != "":
			return nil, nil, invalid("private key is encrypted: give it unencrypted (it is only written into the nginx container, mode 0600)")
		case !strings.HasSuffix(b.Type, "PRIVATE KEY"):
			return nil, nil, invalid("key PEM: block %q, want EC PRIVATE KEY or PRIVATE KEY", blockType(b))
		case found != nil:
			return nil, nil, invalid("key PEM holds more than one private key")
		}
		found = b
	}
	if found == nil {
		return nil, nil, invalid("key PEM holds no private key block: want -----BEGIN EC PRIVATE KEY----- or -----BEGIN PRIVATE KEY-----")
	}
	var key any
	var err error
	switch found.Type {
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(found.Bytes)
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(found.Bytes)
	case "RSA PRIVATE KEY":
		return nil, nil, invalid("private key is RSA: ECDSA P-256 is required")
	default:
		return nil, nil, invalid("key PEM: block %q, want EC PRIVATE KEY or PRIVATE KEY", blockType(found))
	}
	if err != nil {
		// The x509 parse errors name the structure, never the bytes.
		return nil, nil, invalid("private key (%s) does not parse: %v", found.Type, err)
	}
	if err := checkKeyType("private key", key); err != nil {
		return nil, nil, err
	}
	priv, ok := key.(*ecdsa.PrivateKey)
	if !ok {
		return nil, nil, invalid("private key is %s: ECDSA P-256 is required", keyKind(key))
	}
	return priv, &pem.Block{Type: found.Type, Bytes: found.Bytes}, nil
}

// checkKeyType requires an ECDSA P-256 key, public or private.
func checkKeyType(what string, key any) error {
	var curve elliptic.Curve
	switch k := key.(type) {
	case *ecdsa.PublicKey:
		curve = k.Curve
	case *ecdsa.PrivateKey:
		curve = k.Curve
	}
	if curve != elliptic.P256() {
		return invalid("%s is %s: ECDSA P-256 is required", what, keyKind(key))
	}
	return nil
}

// keyKind names a key's algorithm and size for messages.
func keyKind(key any) string {
	switch k := key.(type) {
	case *rsa.PublicKey:
		return fmt.Sprintf("RSA %d-bit", k.N.BitLen())
	case *rsa.PrivateKey:
		return fmt.Sprintf("RSA %d-bit", k.N.BitLen())
	case *ecdsa.PublicKey:
		return "ECDSA " + curveName(k.Curve)
	case *ecdsa.PrivateKey:
		return "ECDSA " + curveName(k.Curve)
	case ed25519.PublicKey, ed25519.PrivateKey:
		return "Ed25519"
	case nil:
		return "missing"
	default:
		return fmt.Sprintf("of type %T", key)
	}
}

func curveName(c elliptic.Curve) string {
	if c == nil || c.Params() == nil {
		return "with an unknown curve"
	}
	return c.Params().Name
}

func checkTime(c *x509.Certificate, now time.Time) error {
	switch {
	case now.After(c.NotAfter):
		return invalid("certificate (serial %s) expired at %s: issue a new one", SerialHex(c.SerialNumber), c.NotAfter.UTC().Format(time.RFC3339))
	case now.Before(c.NotBefore):
		return invalid("certificate (serial %s) is not valid before %s: check the clocks of the issuer and this host", SerialHex(c.SerialNumber), c.NotBefore.UTC().Format(time.RFC3339))
	}
	return nil
}

// serverAuth reports whether the leaf may serve TLS: no extended key usage
// at all, or serverAuth or any among them.
func serverAuth(c *x509.Certificate) bool {
	if len(c.ExtKeyUsage) == 0 && len(c.UnknownExtKeyUsage) == 0 {
		return true
	}
	return slices.ContainsFunc(c.ExtKeyUsage, func(u x509.ExtKeyUsage) bool {
		return u == x509.ExtKeyUsageServerAuth || u == x509.ExtKeyUsageAny
	})
}

func checkNames(c *x509.Certificate, names []string) error {
	var missing []string
	for _, n := range names {
		if c.VerifyHostname(n) != nil {
			missing = append(missing, n)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	covers := strings.Join(certNames(c), ", ")
	if covers == "" {
		covers = "no subject alternative names"
	}
	return invalid("certificate (serial %s) does not cover %s; it covers %s", SerialHex(c.SerialNumber), strings.Join(missing, ", "), covers)
}

// checkChain requires chain[0] to have issued leaf, chain[i+1] to have
// issued chain[i], and the whole path to verify at now from the chain's top.
func checkChain(leaf *x509.Certificate, chain []*x509.Certificate, now time.Time) error {
	if len(chain) == 0 {
		return nil
	}
	child := leaf
	for i, parent := range chain {
		if err := child.CheckSignatureFrom(parent); err != nil {
			return invalid("chain certificate %d (%q) did not issue %q: %v; give the chain in order, the leaf's issuer first", i+1, parent.Subject.String(), child.Subject.String(), err)
		}
		child = parent
	}
	roots, inter := x509.NewCertPool(), x509.NewCertPool()
	top := chain[len(chain)-1]
	roots.AddCert(top)
	for _, c := range chain[:len(chain)-1] {
		inter.AddCert(c)
	}
	_, err := leaf.Verify(x509.VerifyOptions{
		Roots: roots, Intermediates: inter, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	if err != nil {
		return invalid("chain does not verify up to %q: %v", top.Subject.String(), err)
	}
	return nil
}

// blockType is a PEM block's type, cut short for messages.
func blockType(b *pem.Block) string {
	const limit = 40
	if len(b.Type) > limit {
		return b.Type[:limit] + "..."
	}
	return b.Type
}
