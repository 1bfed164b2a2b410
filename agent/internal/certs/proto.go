package certs

import (
	"crypto/x509"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/forlock/fleet/internal/pki"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// Proto describes cert as the API's CertificateInfo: serial in the control
// plane's canonical form (lower-case hex, no colons, as pki.SerialHex),
// subject, names, validity, issuer and key type. Source and RotatedAt are
// left for the caller. A nil cert gives nil.
func Proto(cert *x509.Certificate) *forlockv1.CertificateInfo {
	if cert == nil {
		return nil
	}
	return &forlockv1.CertificateInfo{
		Serial:    pki.SerialHex(cert),
		Subject:   cert.Subject.String(),
		Names:     certNames(cert),
		NotBefore: timestamppb.New(cert.NotBefore),
		NotAfter:  timestamppb.New(cert.NotAfter),
		Issuer:    cert.Issuer.String(),
		KeyType:   keyKind(cert.PublicKey),
	}
}
