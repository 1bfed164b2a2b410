package pki

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"net"
	"net/url"
	"time"
)

// caLifetime is how long a new fleet CA is valid.
const caLifetime = 10 * 365 * 24 * time.Hour

// clockSkew back-dates NotBefore so a peer with a slightly slow clock accepts
// a certificate issued just now. Short-lived certificates are back-dated by a
// tenth of their lifetime at most, so "two thirds of the lifetime" stays
// meaningful for them.
const clockSkew = 5 * time.Minute

func backdate(now time.Time, ttl time.Duration) time.Time {
	return now.Add(-min(clockSkew, ttl/10))
}

// IssuedAt estimates when a certificate made by IssueNode or IssueServer
// was issued, undoing backdate: NotBefore is whole seconds, so the estimate
// is up to a second early.
func IssuedAt(c *x509.Certificate) time.Time {
	span := c.NotAfter.Sub(c.NotBefore) // ttl + min(clockSkew, ttl/10)
	return c.NotBefore.Add(min(clockSkew, span/11))
}

// CA is the fleet certificate authority.
type CA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

// NewCA creates a self-signed fleet CA valid from now for ten years.
func NewCA(now time.Time, commonName string) (*CA, error) {
	key, err := GenerateKey()
	if err != nil {
		return nil, fmt.Errorf("ca key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: commonName, Organization: []string{"Forlock Fleet"}},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(caLifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("self-sign ca: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse new ca: %w", err)
	}
	return &CA{cert: cert, key: key, pem: EncodeCertPEM(der)}, nil
}

// LoadCA loads a CA from its PEM certificate and PEM private key.
func LoadCA(certPEM, keyPEM []byte) (*CA, error) {
	certs, err := ParseCertsPEM(certPEM)
	if err != nil {
		return nil, fmt.Errorf("ca certificate: %w", err)
	}
	key, err := ParseKeyPEM(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("ca key: %w", err)
	}
	cert := certs[0]
	if !cert.IsCA {
		return nil, errors.New("ca certificate is not a CA")
	}
	if !key.PublicKey.Equal(cert.PublicKey) {
		return nil, errors.New("ca key does not match ca certificate")
	}
	return &CA{cert: cert, key: key, pem: EncodeCertPEM(cert.Raw)}, nil
}

// Certificate returns the CA certificate.
func (ca *CA) Certificate() *x509.Certificate { return ca.cert }

// CertPEM returns the CA certificate in PEM, the fleet's trust bundle.
func (ca *CA) CertPEM() []byte { return ca.pem }

// KeyPEM returns the CA private key in PEM, for storing it.
func (ca *CA) KeyPEM() ([]byte, error) { return EncodeKeyPEM(ca.key) }

// Pool returns a cert pool holding only this CA.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

// IssueServer issues a TLS server certificate for the control plane with the
// given DNS names and IP addresses as SANs.
func (ca *CA) IssueServer(now time.Time, names []string, key *ecdsa.PrivateKey, ttl time.Duration) (*x509.Certificate, error) {
	if len(names) == 0 {
		return nil, errors.New("server certificate needs at least one name")
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: names[0], Organization: []string{"Forlock Fleet"}},
		NotBefore:    backdate(now, ttl),
		NotAfter:     now.Add(ttl),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	return ca.sign(tmpl, &key.PublicKey)
}

// IssueNode signs a client certificate for node id at the given identity
// epoch, for the public key of an already validated CSR (see ParseCSR).
func (ca *CA) IssueNode(now time.Time, csr *x509.CertificateRequest, id NodeID, ttl time.Duration) (*x509.Certificate, error) {
	pub, ok := csr.PublicKey.(*ecdsa.PublicKey)
	if !ok {
		return nil, ErrCSRKeyType
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: id.ID, Organization: []string{"Forlock Fleet nodes"}},
		NotBefore:    backdate(now, ttl),
		NotAfter:     now.Add(ttl),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		URIs:         []*url.URL{id.URI()},
	}
	return ca.sign(tmpl, pub)
}

func (ca *CA) sign(tmpl *x509.Certificate, pub *ecdsa.PublicKey) (*x509.Certificate, error) {
	if tmpl.NotAfter.After(ca.cert.NotAfter) {
		tmpl.NotAfter = ca.cert.NotAfter
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, pub, ca.key)
	if err != nil {
		return nil, fmt.Errorf("sign certificate: %w", err)
	}
	return x509.ParseCertificate(der)
}
