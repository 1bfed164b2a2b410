package vault

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/forlock/fleet/controlplane/internal/secretfile"
)

// Retry policy of each call: Vault's client retries connection errors and
// 5xx answers; these keep a dead or sealed Vault from holding a caller for
// long (RequestTimeout bounds the whole call anyway).
const (
	maxRetries   = 2
	minRetryWait = 200 * time.Millisecond
	maxRetryWait = time.Second
)

// Re-login backoff of Run when logging in again fails.
const (
	minLoginBackoff = time.Second
	maxLoginBackoff = time.Minute
)

// Client is a logged-in Vault client. It is safe for concurrent use; Run
// keeps its token alive.
type Client struct {
	cfg       Config
	method    authMethod
	api       *api.Client
	transport *http.Transport

	mu     sync.Mutex
	auth   *api.Secret // the current login: token, TTL, renewable
	logins int         // successful logins, the first included
}

// New checks cfg, logs in to Vault and returns the client. It fails with
// ErrUnreachable, ErrSealed or ErrForbidden (a refused token or secret ID)
// when Vault cannot be used now.
func New(ctx context.Context, cfg Config) (*Client, error) {
	cfg, method, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if cfg.insecure() {
		cfg.Logger.Warn("vault address is plain http on another host: the Vault token travels in clear (allow_insecure_http is set)", "address", cfg.Address)
	}
	tr, err := transport(cfg.CAFile)
	if err != nil {
		return nil, err
	}
	ac, err := api.NewClient(&api.Config{
		Address: cfg.Address,
		HttpClient: &http.Client{
			Transport: tr,
			// Vault's client follows redirects itself (standby nodes).
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		Timeout:      cfg.RequestTimeout,
		MaxRetries:   maxRetries,
		MinRetryWait: minRetryWait,
		MaxRetryWait: maxRetryWait,
	})
	if err != nil {
		tr.CloseIdleConnections()
		return nil, fmt.Errorf("vault client for %s: %w", cfg.Address, err)
	}
	// api.NewClient takes VAULT_TOKEN, VAULT_NAMESPACE and VAULT_HEADERS from
	// the environment; only the Config counts here.
	ac.ClearToken()
	ac.SetHeaders(http.Header{api.RequestHeaderName: []string{"true"}})
	if cfg.Namespace != "" {
		ac.SetNamespace(cfg.Namespace)
	}
	c := &Client{cfg: cfg, method: method, api: ac, transport: tr}
	if err := c.login(ctx); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// transport is an HTTP transport that trusts the CAs in caFile, or the
// system roots when caFile is empty.
func transport(caFile string) (*http.Transport, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	tr.TLSHandshakeTimeout = 10 * time.Second
	if caFile == "" {
		return tr, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("vault CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("vault CA file %s holds no PEM certificate: give the CA bundle that signed Vault's certificate", caFile)
	}
	tr.TLSClientConfig.RootCAs = pool
	return tr, nil
}

// loginCount is how many logins the client made, the first included.
func (c *Client) loginCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.logins
}

// Close releases the client's idle connections. Stop Run first.
func (c *Client) Close() { c.transport.CloseIdleConnections() }

// Address is Vault's address from the Config.
func (c *Client) Address() string { return c.cfg.Address }

// login gets a token (AppRole) or checks the configured one (token, token
// file) and makes it the client's token.
func (c *Client) login(ctx context.Context) error {
	var auth *api.Secret
	switch c.method {
	case authAppRole:
		secretID, err := readSecretFile("secret ID", c.cfg.SecretIDFile)
		if err != nil {
			return err
		}
		path := "auth/" + c.cfg.AppRoleMount + "/login"
		lc, err := c.api.CloneWithHeaders() // the namespace header, without a token
		if err != nil {
			return fmt.Errorf("vault login: %w", err)
		}
		lc.ClearToken()
		s, err := lc.Logical().WriteWithContext(ctx, path, map[string]any{"role_id": c.cfg.RoleID, "secret_id": secretID})
		if err != nil {
			err = c.classify("login", path, err)
			var ve *vaultError
			if errors.As(err, &ve) && (ve.kind == nil || errors.Is(ve.kind, ErrForbidden)) {
				ve.msg += fmt.Sprintf(": if the role ID or the secret ID in %s is wrong, expired or used up, write a new secret ID there", c.cfg.SecretIDFile)
			}
			return err
		}
		if s == nil || s.Auth == nil || s.Auth.ClientToken == "" {
			return fmt.Errorf("vault login at %s returned no token: %w", path, ErrInvalid)
		}
		auth = s
	default:
		token := c.cfg.Token
		if c.method == authTokenFile {
			var err error
			if token, err = readSecretFile("token", c.cfg.TokenFile); err != nil {
				return err
			}
		}
		s, err := c.lookupSelf(ctx, token)
		if err != nil {
			return err
		}
		auth = s
	}
	ttl, _ := auth.TokenTTL()
	renewable, _ := auth.TokenIsRenewable()
	c.api.SetToken(auth.Auth.ClientToken)
	c.mu.Lock()
	c.auth = auth
	c.logins++
	c.mu.Unlock()
	c.cfg.Logger.Info("logged in to vault", "address", c.cfg.Address, "method", c.method.String(), "ttl", ttl, "renewable", renewable)
	return nil
}

// lookupSelf checks token and returns its lifetime as an auth secret, the
// shape the lifetime watcher renews.
func (c *Client) lookupSelf(ctx context.Context, token string) (*api.Secret, error) {
	const path = "auth/token/lookup-self"
	tc, err := c.api.CloneWithHeaders()
	if err != nil {
		return nil, fmt.Errorf("vault login: %w", err)
	}
	tc.SetToken(token)
	s, err := tc.Auth().Token().LookupSelfWithContext(ctx)
	if err != nil {
		err = c.classify("read", path, err)
		var ve *vaultError
		if errors.As(err, &ve) && errors.Is(ve.kind, ErrForbidden) {
			ve.msg = fmt.Sprintf("vault at %s refused the control plane's %s (expired, revoked or wrong, or its policies lack read on %s, which Vault's default policy grants): give it a valid token", c.cfg.Address, c.method, path)
		}
		return nil, err
	}
	if s == nil || s.Data == nil {
		return nil, fmt.Errorf("vault token lookup returned nothing: %w", ErrInvalid)
	}
	ttl, err := s.TokenTTL()
	if err != nil {
		return nil, fmt.Errorf("vault token lookup: ttl: %w", ErrInvalid)
	}
	renewable, _ := s.TokenIsRenewable()
	return &api.Secret{Auth: &api.SecretAuth{
		ClientToken:   token,
		Renewable:     renewable,
		LeaseDuration: int(ttl / time.Second),
	}}, nil
}

// readSecretFile reads a token or secret ID from path. It refuses a file that
// group or other users can access (a Vault Agent file sink needs mode =
// 0600: its default is 0640).
func readSecretFile(what, path string) (string, error) {
	return secretfile.Read(path, "Vault "+what)
}

// Run keeps the client's token alive until ctx ends, then returns nil. It
// renews the token with Vault's lifetime watcher; when the token can no
// longer be renewed (non-renewable, or at its max TTL) it logs in again:
// AppRole with the secret ID file read anew, a token file re-read (a tool
// such as Vault Agent may have replaced it). A token without TTL (a root
// token) needs nothing. Failures are logged and retried with backoff.
func (c *Client) Run(ctx context.Context) error {
	backoff := minLoginBackoff
	for ctx.Err() == nil {
		c.mu.Lock()
		auth := c.auth
		c.mu.Unlock()
		c.watch(ctx, auth)
		if ctx.Err() != nil {
			break
		}
		err := c.login(ctx)
		if ctx.Err() != nil {
			break
		}
		c.mu.Lock()
		same := err == nil && c.auth.Auth.ClientToken == auth.Auth.ClientToken && c.method != authAppRole
		c.mu.Unlock()
		switch {
		case err != nil:
			c.cfg.Logger.Error("vault: logging in again failed; retrying", "address", c.cfg.Address, "error", err, "retry_in", backoff)
		case same:
			// A static token at the end of its renewals: nothing to do but
			// warn until someone replaces it.
			c.cfg.Logger.Warn("vault token can no longer be renewed and will expire: give the control plane a new token",
				"address", c.cfg.Address, "method", c.method.String(), "retry_in", backoff)
		default:
			backoff = minLoginBackoff
			continue
		}
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, maxLoginBackoff)
	}
	return nil
}

// watch renews auth until it can no longer be renewed or ctx ends.
func (c *Client) watch(ctx context.Context, auth *api.Secret) {
	if auth.Auth.LeaseDuration == 0 {
		<-ctx.Done() // never expires
		return
	}
	w, err := c.api.NewLifetimeWatcher(&api.LifetimeWatcherInput{Secret: auth, RenewBehavior: api.RenewBehaviorIgnoreErrors})
	if err != nil {
		c.cfg.Logger.Error("vault: cannot watch the token's lifetime", "error", err)
		return
	}
	go w.Start()
	for {
		select {
		case <-ctx.Done():
			w.Stop()
			<-w.DoneCh() //nolint:errcheck // Start has returned; its error is the cancellation
			return
		case err := <-w.DoneCh():
			if err != nil {
				c.cfg.Logger.Warn("vault: token renewal stopped", "address", c.cfg.Address, "error", c.classify("update", "auth/token/renew-self", err))
			}
			return
		case r := <-w.RenewCh():
			if r.Secret != nil && r.Secret.Auth != nil {
				c.cfg.Logger.Debug("vault: token renewed", "ttl", time.Duration(r.Secret.Auth.LeaseDuration)*time.Second)
			}
		}
	}
}
