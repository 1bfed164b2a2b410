package vault

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"
)

// IssueCertificate issues a certificate for commonName from the PKI role
// (PKIMount/issue/PKIRole). altNames are DNS names and IP addresses; each goes
// where it belongs (alt_names, ip_sans). ttl 0 asks for DefaultCertTTL (90
// days); Vault caps it at the role's max_ttl and the mount's max lease TTL,
// and NotAfter says what was granted. The role must issue ECDSA P-256 keys
// (key_type=ec, key_bits=256); any other key is refused with ErrInvalid.
//
// The private key exists only in the returned Certificate: Vault's PKI does
// not store it, and neither does this package.
func (c *Client) IssueCertificate(ctx context.Context, commonName string, altNames []string, ttl time.Duration) (Certificate, error) {
	if c.cfg.PKIRole == "" {
		return Certificate{}, fmt.Errorf("issue a certificate: no vault PKI role set: %w", ErrNotConfigured)
	}
	commonName = strings.TrimSpace(commonName)
	if commonName == "" {
		return Certificate{}, errors.New("issue a certificate: the common name is empty")
	}
	if ttl < 0 {
		return Certificate{}, fmt.Errorf("issue a certificate for %s: negative ttl %s", commonName, ttl)
	}
	if ttl == 0 {
		ttl = DefaultCertTTL
	}
	var dns, ips []string
	for _, n := range altNames {
		n = strings.TrimSpace(n)
		switch {
		case n == "":
		case net.ParseIP(n) != nil:
			ips = append(ips, n)
		default:
			dns = append(dns, n)
		}
	}
	data := map[string]any{
		"common_name": commonName,
		"ttl":         fmt.Sprintf("%ds", int64(ttl/time.Second)),
		"format":      "pem",
	}
	if len(dns) > 0 {
		data["alt_names"] = strings.Join(dns, ",")
	}
	if len(ips) > 0 {
		data["ip_sans"] = strings.Join(ips, ",")
	}
	path := c.cfg.PKIMount + "/issue/" + c.cfg.PKIRole
	s, err := c.api.Logical().WriteWithContext(ctx, path, data)
	if err != nil {
		return Certificate{}, c.classify("update", path, err)
	}
	if s == nil || s.Data == nil {
		return Certificate{}, fmt.Errorf("issue a certificate at %s: vault returned no data: %w", path, ErrInvalid)
	}
	for _, w := range s.Warnings {
		c.cfg.Logger.Warn("vault pki warning", "path", path, "common_name", commonName, "warning", w)
	}
	certPEM, _ := s.Data["certificate"].(string)
	keyPEM, _ := s.Data["private_key"].(string)
	if certPEM == "" || keyPEM == "" {
		return Certificate{}, fmt.Errorf("issue a certificate at %s: vault returned no certificate or key: %w", path, ErrInvalid)
	}
	if kt, _ := s.Data["private_key_type"].(string); kt != "" && kt != "ec" {
		return Certificate{}, fmt.Errorf("issue a certificate at %s: the role issues %s keys: set key_type=ec key_bits=256 on PKI role %s: %w",
			path, kt, c.cfg.PKIRole, ErrInvalid)
	}
	chain := stringsField(s.Data["ca_chain"])
	if len(chain) == 0 {
		chain = stringsField(s.Data["issuing_ca"])
	}
	cert, err := newCertificate("issue a certificate at "+path, []byte(certPEM), []byte(keyPEM), []byte(strings.Join(chain, "\n")), time.Now())
	if err != nil {
		return Certificate{}, err
	}
	return cert, nil
}

// stringsField reads a Vault field that is a string or a list of strings.
func stringsField(v any) []string {
	switch t := v.(type) {
	case string:
		if strings.TrimSpace(t) == "" {
			return nil
		}
		return []string{t}
	case []any:
		var out []string
		for _, e := range t {
			if s, ok := e.(string); ok && strings.TrimSpace(s) != "" {
				out = append(out, s)
			}
		}
		return out
	case []string:
		return t
	}
	return nil
}
