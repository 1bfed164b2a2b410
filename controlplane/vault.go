package controlplane

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/forlock/fleet/controlplane/internal/jobs"
	"github.com/forlock/fleet/controlplane/internal/vault"
	"github.com/forlock/fleet/internal/keys"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// VaultConfig connects the control plane to HashiCorp Vault: PKI and KV v2
// for the nodes' nginx certificates, Transit for backup data keys.
type VaultConfig = vault.Config

// Backup key-encryption key sources (Config.BackupKeys).
const (
	// BackupKeysLocal wraps data keys with the key file in the data dir.
	BackupKeysLocal = "local"
	// BackupKeysVaultTransit wraps them with Vault Transit; artifacts made
	// under the local key file still unwrap with it.
	BackupKeysVaultTransit = "vault-transit"
)

// CertsConfig says what certificates nodes get.
type CertsConfig struct {
	// Domain makes a node's certificate name "<node>.<domain>"; empty uses
	// the node name alone.
	Domain string
	// ExtraNames are added to every node's certificate (DNS names or IP
	// addresses), e.g. "localhost".
	ExtraNames []string
	// KVPath is where cert_rotate jobs with the KV source read a node's
	// pair, under the KV mount; "{node}" is the node's name. Default
	// "forlock/tls/{node}".
	KVPath string
	// TTL is the lifetime asked of Vault PKI; default 90 days.
	TTL time.Duration
}

// DefaultCertTTL is the nginx certificates' default lifetime: the guide
// rotates every 90 days.
const DefaultCertTTL = 90 * 24 * time.Hour

func (c CertsConfig) withDefaults() CertsConfig {
	if c.KVPath == "" {
		c.KVPath = "forlock/tls/{node}"
	}
	if c.TTL == 0 {
		c.TTL = DefaultCertTTL
	}
	return c
}

// vaultCerts makes nodes' certificates from Vault.
type vaultCerts struct {
	v   *vault.Client
	cfg CertsConfig
}

var _ jobs.CertSource = vaultCerts{}

// names are the names of a node's certificate, the common name first.
func (c vaultCerts) names(node string) []string {
	cn := node
	if c.cfg.Domain != "" {
		cn = node + "." + c.cfg.Domain
	}
	return append([]string{cn}, c.cfg.ExtraNames...)
}

// NodeCertificate issues or reads the node's pair.
func (c vaultCerts) NodeCertificate(ctx context.Context, node jobs.Node, spec *forlockv1.CertRotateSpec) (*forlockv1.CertificatePair, error) {
	var (
		cert vault.Certificate
		err  error
		src  = spec.GetSource()
	)
	switch src {
	case forlockv1.CertificateSource_CERTIFICATE_SOURCE_VAULT_KV:
		p := spec.GetKvPath()
		if p == "" {
			p = c.cfg.KVPath
		}
		cert, err = c.v.ReadCertificate(ctx, strings.ReplaceAll(p, "{node}", node.Name))
	default:
		src = forlockv1.CertificateSource_CERTIFICATE_SOURCE_VAULT_PKI
		ttl := spec.GetTtl().AsDuration()
		if ttl == 0 {
			ttl = c.cfg.TTL
		}
		names := c.names(node.Name)
		cert, err = c.v.IssueCertificate(ctx, names[0], names[1:], ttl)
	}
	if err != nil {
		return nil, err
	}
	return &forlockv1.CertificatePair{CertificatePem: string(cert.CertPEM), PrivateKeyPem: string(cert.KeyPEM),
		ChainPem: string(cert.ChainPEM), Source: src}, nil
}

// kekSet wraps new data keys with one wrapper and unwraps with whichever
// made the key, by key ID prefix: after a move from the local key file to
// Vault Transit, older artifacts still restore, and rewrap moves them.
type kekSet struct {
	current *vault.Transit
	local   *keys.File
}

func (k kekSet) KeyID() string { return k.current.KeyID() }

func (k kekSet) Wrap(ctx context.Context, plain []byte) ([]byte, error) {
	return k.current.Wrap(ctx, plain)
}

func (k kekSet) Unwrap(ctx context.Context, keyID string, wrapped []byte) ([]byte, error) {
	if strings.HasPrefix(keyID, keys.LocalKeyIDPrefix) {
		return k.local.Unwrap(ctx, keyID, wrapped)
	}
	return k.current.Unwrap(ctx, keyID, wrapped)
}

// Rewrap moves a wrapped key to the Transit key's latest version: inside
// Vault for Transit keys, by unwrap and wrap for local ones.
func (k kekSet) Rewrap(ctx context.Context, keyID string, wrapped []byte) (string, []byte, error) {
	if !strings.HasPrefix(keyID, keys.LocalKeyIDPrefix) {
		return k.current.Rewrap(ctx, keyID, wrapped)
	}
	return jobs.UnwrapAndWrap(ctx, k, keyID, wrapped)
}

// Refresh reads the Transit key's latest version, after a rotation in
// Vault.
func (k kekSet) Refresh(ctx context.Context) error { return k.current.Refresh(ctx) }

var (
	_ jobs.Rewrapper = kekSet{}
	_ jobs.Refresher = kekSet{}
)

// vaultStartTimeout bounds the first login and key lookup at start.
const vaultStartTimeout = 30 * time.Second

// openVault logs in to Vault and, with BackupKeysVaultTransit, returns the
// key set to wrap backups with.
func (s *Server) openVault(local *keys.File) (jobs.KeyWrapper, error) {
	ctx, cancel := context.WithTimeout(context.Background(), vaultStartTimeout)
	defer cancel()
	cfg := *s.cfg.Vault
	cfg.Logger = s.log
	v, err := vault.New(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("vault: %w", err)
	}
	s.vault = v
	if s.cfg.BackupKeys != BackupKeysVaultTransit {
		return local, nil
	}
	tr, err := v.Transit(ctx)
	if err != nil {
		return nil, fmt.Errorf("vault transit: %w", err)
	}
	return kekSet{current: tr, local: local}, nil
}
