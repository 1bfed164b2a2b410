package jobs

import (
	"strings"
	"time"

	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// Certificate lifetimes a cert_rotate job may ask Vault PKI for.
const (
	minCertTTL = time.Hour
	maxCertTTL = 397 * 24 * time.Hour // what browsers accept
)

func validCertRotate(c *forlockv1.CertRotateSpec) error {
	switch c.GetSource() {
	case forlockv1.CertificateSource_CERTIFICATE_SOURCE_UNSPECIFIED, forlockv1.CertificateSource_CERTIFICATE_SOURCE_VAULT_PKI:
		if c.GetKvPath() != "" {
			return invalid("cert_rotate: a KV path goes with the vault_kv source, not vault_pki")
		}
	case forlockv1.CertificateSource_CERTIFICATE_SOURCE_VAULT_KV:
		p := c.GetKvPath()
		if strings.HasPrefix(p, "/") || strings.Contains(p, "..") || len(p) > 512 || strings.ContainsAny(p, "\x00?#") {
			return invalid("cert_rotate: KV path %q: a relative path under the KV mount, without '..'", p)
		}
	default:
		return invalid("cert_rotate: unknown certificate source %d: use vault_pki or vault_kv", c.GetSource())
	}
	if ttl := c.GetTtl().AsDuration(); ttl != 0 && (ttl < minCertTTL || ttl > maxCertTTL) {
		return invalid("cert_rotate: lifetime %s: give 1h to 397 days (0: 90 days)", ttl)
	}
	return nil
}
