package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
)

// MaxCSRSize bounds a DER CSR. A P-256 CSR with a short subject is about 250
// bytes; anything near this limit is not one of ours.
const MaxCSRSize = 2048

// maxSubjectField bounds each subject attribute of a CSR.
const maxSubjectField = 128

// CSR errors, distinct so the API can tell the caller what is wrong.
var (
	ErrCSRTooLarge  = fmt.Errorf("csr exceeds %d bytes", MaxCSRSize)
	ErrCSRMalformed = errors.New("csr is not a valid DER PKCS#10 request")
	ErrCSRSignature = errors.New("csr signature does not verify")
	ErrCSRKeyType   = errors.New("csr key must be ECDSA P-256")
	ErrCSRFields    = errors.New("csr has oversized or unexpected fields")
)

// ParseCSR parses and checks a DER CSR from outside: size, syntax,
// self-signature, key type (ECDSA P-256 only) and field sizes. The subject
// and extensions are otherwise ignored: the CA sets them.
func ParseCSR(der []byte) (*x509.CertificateRequest, error) {
	if len(der) > MaxCSRSize {
		return nil, ErrCSRTooLarge
	}
	if len(der) == 0 {
		return nil, fmt.Errorf("%w: empty", ErrCSRMalformed)
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCSRMalformed, err)
	}
	pub, ok := csr.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		return nil, ErrCSRKeyType
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, ErrCSRSignature
	}
	for _, a := range csr.Subject.Names {
		if s, ok := a.Value.(string); !ok || len(s) > maxSubjectField {
			return nil, fmt.Errorf("%w: subject attribute %v", ErrCSRFields, a.Type)
		}
	}
	if n := len(csr.DNSNames) + len(csr.IPAddresses) + len(csr.URIs) + len(csr.EmailAddresses); n > 4 {
		return nil, fmt.Errorf("%w: %d subject alternative names", ErrCSRFields, n)
	}
	return csr, nil
}

// CreateCSR returns a DER CSR for key with the given common name.
func CreateCSR(key *ecdsa.PrivateKey, commonName string) ([]byte, error) {
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: commonName},
	}, key)
	if err != nil {
		return nil, fmt.Errorf("create csr: %w", err)
	}
	return der, nil
}
