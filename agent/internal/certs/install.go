package certs

import (
	"cmp"
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path"
	"strings"
	"time"
)

// Defaults of Config.
const (
	DefaultService          = "nginx"
	DefaultCertPath         = "/etc/nginx/tls/cert.pem"
	DefaultKeyPath          = "/etc/nginx/tls/key.pem"
	DefaultExecTimeout      = 30 * time.Second
	DefaultConfirmTimeout   = 15 * time.Second
	DefaultHandshakeTimeout = 3 * time.Second
)

// Errors Install wraps, besides ErrInvalid, so a task can tell why it
// failed.
var (
	// ErrRejected: nginx -t refused the configuration with the new files;
	// the old files are back and nginx was not reloaded.
	ErrRejected = errors.New("nginx rejected the new certificate")
	// ErrNotServed: after the reload, nginx did not serve the new
	// certificate in time; the old files are back and reloaded.
	ErrNotServed = errors.New("nginx did not serve the new certificate")
	// ErrRollback: putting the old certificate back failed too. The node
	// needs an operator: the message says what state it was left in.
	ErrRollback = errors.New("rollback failed")
)

// Config says where the node's nginx is and how long each step may take.
type Config struct {
	// Docker reaches the node's containers. Required.
	Docker Docker
	// Service is the nginx container, by a name Docker resolves (a
	// container name, or a service such as "nginx"). Default "nginx".
	Service string
	// CertPath and KeyPath are nginx's ssl_certificate and
	// ssl_certificate_key inside the container (absolute). Defaults
	// DefaultCertPath and DefaultKeyPath.
	CertPath, KeyPath string
	// Names must all be covered by the certificate (DNS names, wildcards
	// matched as TLS clients do, or IP addresses). At least one is required.
	Names []string
	// Addr is where nginx's 443 is reachable from the agent, host:port
	// (on a test node, the published loopback port). Required.
	Addr string
	// ServerName is sent as SNI in the confirming handshakes; default the
	// first of Names that is not an IP address.
	ServerName string
	// ExecTimeout bounds each step in the container (copy, rename,
	// nginx -t, reload). Default DefaultExecTimeout.
	ExecTimeout time.Duration
	// ConfirmTimeout bounds the wait for nginx to serve the new certificate
	// after the reload (the reload is asynchronous). Default
	// DefaultConfirmTimeout.
	ConfirmTimeout time.Duration
	// HandshakeTimeout bounds one confirming handshake. Default
	// DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration
	// Now is the clock for validity checks; default time.Now.
	Now func() time.Time
	// Logger gets one line per step outcome; never key material. Default:
	// discard.
	Logger *slog.Logger
}

// check fills in the defaults and rejects what cannot work.
func (c Config) check() (Config, error) {
	if c.Docker == nil {
		return c, errors.New("certs config: no Docker engine")
	}
	if c.Addr == "" {
		return c, errors.New("certs config: no address to confirm nginx's certificate by handshake: set the node's published 443 (host:port)")
	}
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return c, fmt.Errorf("certs config: address %q: want host:port: %w", c.Addr, err)
	}
	if len(c.Names) == 0 {
		return c, errors.New("certs config: no names the certificate must cover: give the node's DNS names or addresses")
	}
	c.Service = cmp.Or(c.Service, DefaultService)
	c.CertPath = cmp.Or(c.CertPath, DefaultCertPath)
	c.KeyPath = cmp.Or(c.KeyPath, DefaultKeyPath)
	for _, p := range []string{c.CertPath, c.KeyPath} {
		if !path.IsAbs(p) || strings.HasSuffix(p, "/") {
			return c, fmt.Errorf("certs config: path %q: want an absolute file path in the container", p)
		}
	}
	if c.CertPath == c.KeyPath {
		return c, fmt.Errorf("certs config: certificate and key share the path %s: give each its own file", c.CertPath)
	}
	if c.ServerName == "" {
		for _, n := range c.Names {
			if net.ParseIP(n) == nil {
				c.ServerName = n
				break
			}
		}
	}
	c.ExecTimeout = cmp.Or(c.ExecTimeout, DefaultExecTimeout)
	c.ConfirmTimeout = cmp.Or(c.ConfirmTimeout, DefaultConfirmTimeout)
	c.HandshakeTimeout = cmp.Or(c.HandshakeTimeout, DefaultHandshakeTimeout)
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

// Result describes a successful install.
type Result struct {
	// Old is the certificate that was installed before; zero when there
	// was none or it did not parse.
	Old Info
	// New is the certificate installed and now served.
	New Info
	// ConfirmedAfter is the time from the reload to the first handshake
	// that showed the new certificate.
	ConfirmedAfter time.Duration
}

// installer runs one Install.
type installer struct {
	cfg Config
	log *slog.Logger
}

// Install puts pair into the nginx container of cfg and makes nginx serve
// it, or leaves the old pair in place and fails; see the package comment
// for the steps. Errors wrap ErrInvalid, ErrRejected, ErrNotServed or
// ErrRollback when those are the reason.
func Install(ctx context.Context, cfg Config, pair Pair) (Result, error) {
	cfg, err := cfg.check()
	if err != nil {
		return Result{}, err
	}
	p, err := parse(pair, cfg.Names, cfg.Now())
	if err != nil {
		return Result{}, err
	}
	i := &installer{cfg: cfg, log: cfg.Logger.With("container", cfg.Service)}
	res := Result{New: Describe(p.leaf)}

	var old snapshot
	if old.cert, err = i.readFile(ctx, cfg.CertPath, 0o644); err != nil {
		return res, fmt.Errorf("read the current certificate: %w", err)
	}
	if old.key, err = i.readFile(ctx, cfg.KeyPath, 0o600); err != nil {
		return res, fmt.Errorf("read the current key: %w", err)
	}
	oldLeaf := firstCert(old.cert.data)
	res.Old = Describe(oldLeaf)
	i.log.Info("installing certificate", "serial", res.New.Serial, "not_after", res.New.NotAfter,
		"old_serial", res.Old.Serial, "cert_path", cfg.CertPath, "key_path", cfg.KeyPath)

	changed, err := i.writeFiles(ctx,
		file{path: cfg.CertPath, data: p.certFile(), mode: 0o644},
		file{path: cfg.KeyPath, data: p.keyFile(), mode: 0o600})
	if err != nil && !changed {
		return res, fmt.Errorf("install the new files: %w; nothing was changed", err)
	}
	if err != nil {
		return res, i.rollback(ctx, old, oldLeaf, false, fmt.Errorf("install the new files: %w", err))
	}
	if err := i.nginx(ctx, "-t"); err != nil {
		return res, i.rollback(ctx, old, oldLeaf, false, fmt.Errorf("%w: %w", ErrRejected, err))
	}
	if err := i.nginx(ctx, "-s", "reload"); err != nil {
		return res, i.rollback(ctx, old, oldLeaf, true, fmt.Errorf("reload nginx: %w", err))
	}
	res.ConfirmedAfter, err = i.confirm(ctx, p.leaf)
	if err != nil {
		return res, i.rollback(ctx, old, oldLeaf, true, fmt.Errorf("%w: %w", ErrNotServed, err))
	}
	i.log.Info("certificate installed and served", "serial", res.New.Serial, "confirmed_after", res.ConfirmedAfter)
	return res, nil
}

// nginx runs nginx with args in the container; a failure carries what
// nginx wrote to stderr.
func (i *installer) nginx(ctx context.Context, args ...string) error {
	ctx, cancel := context.WithTimeout(ctx, i.cfg.ExecTimeout)
	defer cancel()
	cmd := append([]string{"nginx"}, args...)
	res, err := i.cfg.Docker.Exec(ctx, i.cfg.Service, root, cmd, nil, io.Discard)
	if err != nil {
		return fmt.Errorf("%s: %w", strings.Join(cmd, " "), err)
	}
	if res.ExitCode != 0 {
		msg := strings.Join(strings.Fields(strings.ReplaceAll(strings.TrimSpace(res.Stderr), "\n", " | ")), " ")
		return fmt.Errorf("%s exited with status %d: %s", strings.Join(cmd, " "), res.ExitCode, msg)
	}
	return nil
}

// rollback puts the old files back and, if nginx was reloaded with the new
// ones, reloads it and confirms it serves the old leaf again. It returns
// cause, extended with what the rollback did.
func (i *installer) rollback(ctx context.Context, old snapshot, oldLeaf *x509.Certificate, reload bool, cause error) error {
	// The rollback runs even when the task's context has ended.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 4*i.cfg.ExecTimeout+i.cfg.ConfirmTimeout)
	defer cancel()
	i.log.Warn("certificate install failed, putting the old files back", "error", cause, "reload", reload)
	if _, err := i.writeFiles(ctx, old.cert, old.key); err != nil {
		i.log.Error("rollback failed", "error", err)
		return fmt.Errorf("%w; %w: restore the old files: %w; nginx may hold the new files at %s and %s: restore them by hand before nginx restarts",
			cause, ErrRollback, err, i.cfg.CertPath, i.cfg.KeyPath)
	}
	if !reload {
		return fmt.Errorf("%w; the old certificate and key are back in place, nginx was not reloaded", cause)
	}
	if err := i.nginx(ctx, "-s", "reload"); err != nil {
		return fmt.Errorf("%w; %w: the old files are back but reloading nginx failed: %w", cause, ErrRollback, err)
	}
	if oldLeaf == nil {
		return fmt.Errorf("%w; the old files are back and nginx reloaded (the old certificate did not parse, so it was not confirmed)", cause)
	}
	if _, err := i.confirm(ctx, oldLeaf); err != nil {
		return fmt.Errorf("%w; %w: the old files are back and nginx reloaded, but the old certificate (serial %s) is not served either: %w",
			cause, ErrRollback, SerialHex(oldLeaf.SerialNumber), err)
	}
	i.log.Info("old certificate restored and served", "serial", SerialHex(oldLeaf.SerialNumber))
	return fmt.Errorf("%w; the old certificate (serial %s) is back and served", cause, SerialHex(oldLeaf.SerialNumber))
}

// firstCert parses the first CERTIFICATE block of data, or returns nil.
func firstCert(data []byte) *x509.Certificate {
	for {
		var b *pem.Block
		if b, data = pem.Decode(data); b == nil {
			return nil
		}
		if b.Type == "CERTIFICATE" {
			c, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				return nil
			}
			return c
		}
	}
}
