package vault

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/forlock/fleet/internal/loopback"
)

// Defaults for the Config fields left empty.
const (
	DefaultPKIMount       = "pki"
	DefaultKVMount        = "secret"
	DefaultTransitMount   = "transit"
	DefaultAppRoleMount   = "approle"
	DefaultRequestTimeout = 10 * time.Second
	// DefaultCertTTL is the lifetime asked for a certificate when the caller
	// gives none: 90 days, the rotation period of the fleet's TLS guide. The
	// PKI role's max_ttl (and the mount's max lease TTL) cap it.
	DefaultCertTTL = 2160 * time.Hour
)

// Config says where Vault is, how to log in and which engines to use.
//
// Exactly one way to log in must be set: Token, TokenFile, or AppRole
// (RoleID and SecretIDFile). The mounts and names of the features not used
// may stay empty; a feature whose role or key is empty fails with
// ErrNotConfigured.
type Config struct {
	// Address is Vault's URL, e.g. https://vault.internal:8200. Plain
	// http:// is refused unless the host is a loopback address or
	// AllowInsecureHTTP is set: the token would travel in clear.
	Address string
	// AllowInsecureHTTP accepts an http:// address on another host; New
	// logs a warning.
	AllowInsecureHTTP bool
	// CAFile is a PEM bundle of the CAs that sign Vault's TLS certificate;
	// empty means the system roots.
	CAFile string
	// Namespace is the Vault Enterprise namespace; empty for none.
	Namespace string

	// Token is a Vault token. Prefer TokenFile: a token in a config file or
	// flag is easier to leak.
	Token string
	// TokenFile holds a Vault token (surrounding white space is ignored). It
	// is read again when the token can no longer be renewed, so a tool such
	// as Vault Agent may replace it.
	TokenFile string
	// RoleID is the AppRole role ID. With SecretIDFile it selects AppRole.
	RoleID string
	// SecretIDFile holds the AppRole secret ID; it is read at every login.
	SecretIDFile string
	// AppRoleMount is the mount of the AppRole auth method (default "approle").
	AppRoleMount string

	// PKIMount is the PKI engine's mount (default "pki").
	PKIMount string
	// PKIRole is the PKI role that issues node certificates; it must have
	// key_type=ec, key_bits=256 and a max_ttl of at least 2160h.
	PKIRole string
	// KVMount is the KV version 2 engine's mount (default "secret").
	KVMount string
	// TransitMount is the Transit engine's mount (default "transit").
	TransitMount string
	// TransitKey is the Transit key that wraps backup data keys.
	TransitKey string

	// RequestTimeout bounds each Vault call, retries included (default 10 s).
	RequestTimeout time.Duration
	// Logger receives token renewals and re-logins; nil discards them.
	Logger *slog.Logger
}

// authMethod is how the client logs in.
type authMethod int

const (
	authToken authMethod = iota
	authTokenFile
	authAppRole
)

func (m authMethod) String() string {
	switch m {
	case authTokenFile:
		return "token file"
	case authAppRole:
		return "approle"
	}
	return "token"
}

// withDefaults returns cfg with its defaults filled in and checks it. The
// error lists every problem at once.
func (cfg Config) withDefaults() (Config, authMethod, error) {
	cfg.Address = strings.TrimRight(strings.TrimSpace(cfg.Address), "/")
	cfg.PKIMount = mount(cfg.PKIMount, DefaultPKIMount)
	cfg.KVMount = mount(cfg.KVMount, DefaultKVMount)
	cfg.TransitMount = mount(cfg.TransitMount, DefaultTransitMount)
	cfg.AppRoleMount = mount(cfg.AppRoleMount, DefaultAppRoleMount)
	cfg.Namespace = strings.Trim(cfg.Namespace, "/")
	if cfg.RequestTimeout == 0 {
		cfg.RequestTimeout = DefaultRequestTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}

	var errs []error
	if cfg.Address == "" {
		errs = append(errs, errors.New("address is empty: set it to Vault's URL, e.g. https://vault.internal:8200"))
	} else if u, err := url.Parse(cfg.Address); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("address %q is not an http:// or https:// URL with a host", cfg.Address))
	} else if u.Scheme == "http" && !loopback.Host(u.Hostname()) && !cfg.AllowInsecureHTTP {
		errs = append(errs, fmt.Errorf("address %q is plain http: the Vault token would travel in clear; use https://, or set allow_insecure_http: true in the vault section if this network is trusted", cfg.Address))
	}
	if cfg.RequestTimeout < 0 {
		errs = append(errs, fmt.Errorf("request timeout %s is negative", cfg.RequestTimeout))
	}
	var methods []string
	method := authToken
	if cfg.Token != "" {
		methods = append(methods, "token")
	}
	if cfg.TokenFile != "" {
		methods, method = append(methods, "token file"), authTokenFile
	}
	if cfg.RoleID != "" || cfg.SecretIDFile != "" {
		methods, method = append(methods, "approle"), authAppRole
		if cfg.RoleID == "" || cfg.SecretIDFile == "" {
			errs = append(errs, errors.New("approle needs both a role ID and a secret ID file"))
		}
	}
	switch len(methods) {
	case 0:
		errs = append(errs, errors.New("no way to log in: set a token file, a token, or an approle role ID and secret ID file"))
	case 1:
	default:
		errs = append(errs, fmt.Errorf("%s are set: choose one way to log in", strings.Join(methods, " and ")))
	}
	for _, m := range [][2]string{{"pki mount", cfg.PKIMount}, {"kv mount", cfg.KVMount}, {"transit mount", cfg.TransitMount}, {"approle mount", cfg.AppRoleMount}} {
		if err := checkPath(m[1]); err != nil {
			errs = append(errs, fmt.Errorf("%s %q: %w", m[0], m[1], err))
		}
	}
	for _, n := range [][2]string{{"pki role", cfg.PKIRole}, {"transit key", cfg.TransitKey}} {
		if strings.ContainsAny(n[1], "/:?#% \t\n") {
			errs = append(errs, fmt.Errorf("%s %q: must be one path segment without ':' or spaces", n[0], n[1]))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return Config{}, 0, fmt.Errorf("vault config: %w", err)
	}
	return cfg, method, nil
}

// insecure reports whether cfg sends the token in clear to another host.
func (cfg Config) insecure() bool {
	u, err := url.Parse(cfg.Address)
	return err == nil && u.Scheme == "http" && !loopback.Host(u.Hostname())
}

// mount trims the slashes of a mount path and defaults it.
func mount(m, def string) string {
	m = strings.Trim(strings.TrimSpace(m), "/")
	if m == "" {
		return def
	}
	return m
}

// checkPath refuses path segments that would escape a mount.
func checkPath(p string) error {
	for seg := range strings.SplitSeq(p, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return errors.New("has an empty, '.' or '..' segment")
		}
	}
	if strings.ContainsAny(p, "?#% \t\n") {
		return errors.New("has a character not allowed in a Vault path")
	}
	return nil
}
