package agent

import (
	"cmp"
	"fmt"
	"net"
	"net/url"
	"path"
	"regexp"
	"strings"

	"github.com/forlock/fleet/agent/internal/certs"
	"github.com/forlock/fleet/agent/internal/checks"
)

// TLSConfig says where the node's nginx serves TLS and where its
// certificate lives: the cert_rotate task installs certificates there, and
// the certificate check reads the served one by a TLS handshake. Every
// field has a safe default.
type TLSConfig struct {
	// Addr is where nginx's 443 is reachable from the agent, host:port.
	// Default: the host and port of Health.APIURL when it is https (port
	// 443 when it has none), else 127.0.0.1:443.
	Addr string
	// ServerName is sent as SNI in the handshakes. Default: the first DNS
	// name of Names; else, when Addr is derived from a configured API URL,
	// Health.APIServerName or the URL's host name; else none (the
	// cert_rotate task then sends the new certificate's first DNS name).
	ServerName string
	// Names must all be covered by every certificate installed: DNS names
	// (wildcards as TLS clients match them) or IP addresses. Empty accepts
	// the names of the certificate the control plane sends; every other
	// check of the pair still applies.
	Names []string
	// CertPath and KeyPath are nginx's ssl_certificate and
	// ssl_certificate_key inside its container. Defaults
	// /etc/nginx/tls/cert.pem and /etc/nginx/tls/key.pem.
	CertPath, KeyPath string
	// Container is nginx's container, by container or compose service
	// name, found among Health.Containers (or by Health.ComposeProject).
	// Default "nginx": the one named nginx or ending in -nginx
	// (forlock-nginx).
	Container string
}

// hostName matches a DNS name, optionally a wildcard's "*." first label.
var hostName = regexp.MustCompile(`^(\*\.)?([A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?\.)*[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?\.?$`)

// validate returns t with defaults filled in, or an error naming the first
// thing to fix; h is the validated health config (its containers find
// nginx's).
func (t TLSConfig) validate(h HealthConfig) (TLSConfig, error) {
	if t.Addr != "" {
		if _, _, err := splitHostPort(t.Addr); err != nil {
			return t, fmt.Errorf("tls addr %q: %w: give where nginx's 443 is reachable from this host, e.g. 127.0.0.1:443", t.Addr, err)
		}
	}
	if t.ServerName != "" && (net.ParseIP(t.ServerName) != nil || strings.HasPrefix(t.ServerName, "*") || len(t.ServerName) > 253 || !hostName.MatchString(t.ServerName)) {
		return t, fmt.Errorf("tls server name %q: want a DNS name such as node1.example.net (no IP address, no wildcard)", t.ServerName)
	}
	for _, n := range t.Names {
		if net.ParseIP(n) == nil && (len(n) > 253 || !hostName.MatchString(n)) {
			return t, fmt.Errorf("tls name %q: want a DNS name (node1.example.net, *.example.net) or an IP address", n)
		}
	}
	t.CertPath = cmp.Or(t.CertPath, certs.DefaultCertPath)
	t.KeyPath = cmp.Or(t.KeyPath, certs.DefaultKeyPath)
	for _, p := range []struct{ key, path string }{{"nginx cert path", t.CertPath}, {"nginx key path", t.KeyPath}} {
		if !path.IsAbs(p.path) || path.Clean(p.path) != p.path || p.path == "/" {
			return t, fmt.Errorf("%s %q: want a clean absolute file path inside the nginx container, e.g. %s", p.key, p.path, certs.DefaultCertPath)
		}
	}
	if t.CertPath == t.KeyPath {
		return t, fmt.Errorf("nginx cert path and nginx key path are both %s: give the key its own file", t.CertPath)
	}
	if t.Container == "" {
		t.Container = certs.DefaultService
		return t, nil
	}
	if strings.ContainsFunc(t.Container, func(r rune) bool { return isSpaceOrControl(r) || r == '/' || r == ',' }) {
		return t, fmt.Errorf("nginx container %q: want a container or compose service name such as forlock-nginx", t.Container)
	}
	if h.ComposeProject == "" && !hasContainer(h.Containers, t.Container) {
		return t, fmt.Errorf("nginx container %q is not among the containers (%s): add it to containers, or set compose_project",
			t.Container, strings.Join(h.Containers, ", "))
	}
	return t, nil
}

// tlsTarget returns where the agent reaches nginx's TLS, the SNI to send,
// and whether the address was configured (tls_addr, or a configured https
// api_url) rather than the built-in default. cfg must be validated.
func (cfg Config) tlsTarget() (addr, serverName string, explicit bool) {
	t, h := cfg.TLS, cfg.Health
	addr, serverName, explicit = t.Addr, t.ServerName, t.Addr != ""
	if serverName == "" {
		for _, n := range t.Names {
			if net.ParseIP(n) == nil && !strings.HasPrefix(n, "*") {
				serverName = n
				break
			}
		}
	}
	if addr != "" {
		return addr, serverName, explicit
	}
	api, apiExplicit := h.APIURL, h.APIURL != ""
	if !apiExplicit {
		api = DefaultAPIURL
	}
	u, err := url.Parse(api)
	if err != nil || u.Scheme != "https" || u.Hostname() == "" {
		return "127.0.0.1:443", serverName, false
	}
	addr = net.JoinHostPort(u.Hostname(), cmp.Or(u.Port(), "443"))
	if serverName == "" && apiExplicit {
		if serverName = h.APIServerName; serverName == "" && net.ParseIP(u.Hostname()) == nil {
			serverName = u.Hostname()
		}
	}
	return addr, serverName, apiExplicit
}

// certCheck is the health check of the certificate nginx serves.
func (cfg Config) certCheck() *checks.Certificate {
	addr, sni, explicit := cfg.tlsTarget()
	if addr == "" {
		return nil
	}
	return &checks.Certificate{Addr: addr, ServerName: sni, Explicit: explicit}
}

// certHandler runs the cert_rotate task with the agent's TLS settings.
func (a *Agent) certHandler(hc *health) TaskHandler {
	t := a.cfg.TLS
	addr, sni, _ := a.cfg.tlsTarget()
	h := certs.Handler{Config: certs.Config{
		Service: t.Container, CertPath: t.CertPath, KeyPath: t.KeyPath,
		Names: t.Names, Addr: addr, ServerName: sni, Logger: a.log,
	}}
	if hc.docker != nil {
		h.Config.Docker = hc.docker
	} else {
		h.Unavailable = "the Docker Engine client could not be set up: fix docker_host or DOCKER_HOST"
	}
	return h
}
