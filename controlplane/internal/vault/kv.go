package vault

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/vault/api"
)

// Fields of a certificate stored in KV version 2, e.g. by a certbot deploy
// hook:
//
//	vault kv put -mount=secret nginx/web1 \
//	    certificate=@fullchain.pem private_key=@privkey.pem
const (
	// KVFieldCertificate holds the leaf certificate in PEM, optionally
	// followed by its chain (certbot's fullchain.pem). Required.
	KVFieldCertificate = "certificate"
	// KVFieldPrivateKey holds the leaf's private key in PEM (SEC 1 or
	// PKCS #8), ECDSA P-256. Required.
	KVFieldPrivateKey = "private_key"
	// KVFieldCAChain holds more chain certificates in PEM: one string, or a
	// list of strings. Optional.
	KVFieldCAChain = "ca_chain"
)

// ReadCertificate reads the latest version of the certificate stored at path
// in the KV version 2 engine at KVMount (the path inside the mount, e.g.
// "nginx/web1"). It fails with ErrNotFound when the path or a required field
// is missing, and with ErrInvalid when the pair does not parse, the key is
// not ECDSA P-256 or not the certificate's, or the certificate expired.
func (c *Client) ReadCertificate(ctx context.Context, path string) (Certificate, error) {
	path = strings.Trim(path, "/")
	if err := checkPath(path); err != nil {
		return Certificate{}, fmt.Errorf("read a certificate from vault kv: path %q: %w", path, err)
	}
	full := c.cfg.KVMount + "/data/" + path
	s, err := c.api.KVv2(c.cfg.KVMount).Get(ctx, path)
	switch {
	case errors.Is(err, api.ErrSecretNotFound):
		return Certificate{}, &vaultError{
			msg:  fmt.Sprintf("read %s: vault at %s has no secret at %s in the KV v2 engine %s: put the certificate there (fields %s, %s)", full, c.cfg.Address, path, c.cfg.KVMount, KVFieldCertificate, KVFieldPrivateKey),
			kind: ErrNotFound, cause: err,
		}
	case err != nil:
		return Certificate{}, c.classify("read", full, err)
	case s == nil || s.Data == nil:
		// A deleted or destroyed latest version.
		return Certificate{}, &vaultError{
			msg:  fmt.Sprintf("read %s: the latest version of %s in vault at %s is deleted: put the certificate there again", full, path, c.cfg.Address),
			kind: ErrNotFound,
		}
	}
	where := fmt.Sprintf("vault kv %s/%s", c.cfg.KVMount, path)
	if s.VersionMetadata != nil {
		where += fmt.Sprintf(" (version %d)", s.VersionMetadata.Version)
	}
	field := func(name string) (string, error) {
		v, ok := s.Data[name].(string)
		if !ok || strings.TrimSpace(v) == "" {
			return "", &vaultError{
				msg:  fmt.Sprintf("%s: field %q is missing or empty: put the PEM there", where, name),
				kind: ErrNotFound,
			}
		}
		return v, nil
	}
	certPEM, err := field(KVFieldCertificate)
	if err != nil {
		return Certificate{}, err
	}
	keyPEM, err := field(KVFieldPrivateKey)
	if err != nil {
		return Certificate{}, err
	}
	chain := strings.Join(stringsField(s.Data[KVFieldCAChain]), "\n")
	return newCertificate(where, []byte(certPEM), []byte(keyPEM), []byte(chain), time.Now())
}
