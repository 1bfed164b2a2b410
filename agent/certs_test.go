package agent

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestTLSConfigValidate(t *testing.T) {
	base := Config{ControlPlane: "cp.example.net:7443", Name: "web-1"}
	tests := []struct {
		name    string
		mod     func(*Config)
		want    TLSConfig // checked when no error is wanted
		wantErr string
	}{
		{"defaults", func(*Config) {}, TLSConfig{CertPath: "/etc/nginx/tls/cert.pem", KeyPath: "/etc/nginx/tls/key.pem", Container: "nginx"}, ""},
		{"everything", func(c *Config) {
			c.TLS = TLSConfig{Addr: "[::1]:8443", ServerName: "node1.example.net", Names: []string{"node1.example.net", "*.example.net", "10.0.0.5", "::1"},
				CertPath: "/etc/ssl/fullchain.pem", KeyPath: "/etc/ssl/private/key.pem", Container: "forlock-nginx"}
		}, TLSConfig{Addr: "[::1]:8443", ServerName: "node1.example.net", Names: []string{"node1.example.net", "*.example.net", "10.0.0.5", "::1"},
			CertPath: "/etc/ssl/fullchain.pem", KeyPath: "/etc/ssl/private/key.pem", Container: "forlock-nginx"}, ""},
		{"container by compose project", func(c *Config) { c.Health.ComposeProject, c.TLS.Container = "forlock", "proxy" },
			TLSConfig{CertPath: "/etc/nginx/tls/cert.pem", KeyPath: "/etc/nginx/tls/key.pem", Container: "proxy"}, ""},
		{"container by service suffix", func(c *Config) { c.Health.Containers, c.TLS.Container = []string{"node2-proxy"}, "proxy" },
			TLSConfig{CertPath: "/etc/nginx/tls/cert.pem", KeyPath: "/etc/nginx/tls/key.pem", Container: "proxy"}, ""},
		{"addr without port", func(c *Config) { c.TLS.Addr = "127.0.0.1" }, TLSConfig{}, `tls: tls addr "127.0.0.1": want HOST:PORT`},
		{"addr bad port", func(c *Config) { c.TLS.Addr = "127.0.0.1:https" }, TLSConfig{}, `tls: tls addr "127.0.0.1:https": port "https" is not a number`},
		{"server name is an IP", func(c *Config) { c.TLS.ServerName = "127.0.0.1" }, TLSConfig{}, `tls: tls server name "127.0.0.1": want a DNS name`},
		{"server name wildcard", func(c *Config) { c.TLS.ServerName = "*.example.net" }, TLSConfig{}, `tls server name "*.example.net"`},
		{"server name with space", func(c *Config) { c.TLS.ServerName = "a b" }, TLSConfig{}, `tls server name "a b"`},
		{"bad name", func(c *Config) { c.TLS.Names = []string{"node1.example.net", "https://x"} }, TLSConfig{},
			`tls: tls name "https://x": want a DNS name (node1.example.net, *.example.net) or an IP address`},
		{"empty name", func(c *Config) { c.TLS.Names = []string{""} }, TLSConfig{}, `tls name ""`},
		{"relative cert path", func(c *Config) { c.TLS.CertPath = "cert.pem" }, TLSConfig{},
			`tls: nginx cert path "cert.pem": want a clean absolute file path inside the nginx container`},
		{"unclean key path", func(c *Config) { c.TLS.KeyPath = "/etc/nginx/../key.pem" }, TLSConfig{}, `nginx key path "/etc/nginx/../key.pem"`},
		{"directory key path", func(c *Config) { c.TLS.KeyPath = "/etc/nginx/tls/" }, TLSConfig{}, `nginx key path "/etc/nginx/tls/"`},
		{"same paths", func(c *Config) { c.TLS.CertPath, c.TLS.KeyPath = "/tls/both.pem", "/tls/both.pem" }, TLSConfig{},
			"tls: nginx cert path and nginx key path are both /tls/both.pem: give the key its own file"},
		{"container not among the containers", func(c *Config) { c.TLS.Container = "proxy" }, TLSConfig{},
			`tls: nginx container "proxy" is not among the containers (forlock-api, forlock-postgres, forlock-redis, forlock-nginx): add it to containers, or set compose_project`},
		{"container with slash", func(c *Config) { c.TLS.Container = "a/b" }, TLSConfig{}, `nginx container "a/b": want a container or compose service name`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := base
			tt.mod(&cfg)
			got, err := cfg.validate()
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got.TLS)
		})
	}
}

func TestTLSTarget(t *testing.T) {
	tests := []struct {
		name         string
		health       HealthConfig
		tls          TLSConfig
		addr, sni    string
		wantExplicit bool
	}{
		{"all defaults", HealthConfig{}, TLSConfig{}, "127.0.0.1:443", "", false},
		{"tls addr", HealthConfig{APIURL: "https://api.example.net"}, TLSConfig{Addr: "127.0.0.1:8443"}, "127.0.0.1:8443", "", true},
		{"sni from names", HealthConfig{}, TLSConfig{Names: []string{"10.0.0.5", "*.example.net", "node1.example.net"}}, "127.0.0.1:443", "node1.example.net", false},
		{"sni given", HealthConfig{}, TLSConfig{ServerName: "sni.example.net", Names: []string{"node1.example.net"}}, "127.0.0.1:443", "sni.example.net", false},
		{"https api url with port", HealthConfig{APIURL: "https://127.0.0.1:18443/"}, TLSConfig{}, "127.0.0.1:18443", "", true},
		{"https api url host name", HealthConfig{APIURL: "https://vault.example.net"}, TLSConfig{}, "vault.example.net:443", "vault.example.net", true},
		{"https api url and server name", HealthConfig{APIURL: "https://127.0.0.1", APIServerName: "vault.example.net"}, TLSConfig{}, "127.0.0.1:443", "vault.example.net", true},
		{"https api url ipv6", HealthConfig{APIURL: "https://[::1]:8443"}, TLSConfig{}, "[::1]:8443", "", true},
		{"http api url", HealthConfig{APIURL: "http://127.0.0.1:8080"}, TLSConfig{}, "127.0.0.1:443", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Config{ControlPlane: "cp:1", Name: "n", Health: tt.health, TLS: tt.tls}.validate()
			require.NoError(t, err)
			addr, sni, explicit := cfg.tlsTarget()
			require.Equal(t, tt.addr, addr)
			require.Equal(t, tt.sni, sni)
			require.Equal(t, tt.wantExplicit, explicit)
			c := cfg.certCheck()
			require.Equal(t, tt.addr, c.Addr)
			require.Equal(t, tt.wantExplicit, c.Explicit)
		})
	}
}

func TestTLSSettingsPrecedence(t *testing.T) {
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "agent.yaml")
	require.NoError(t, os.WriteFile(cfgFile, []byte(`version: 1
tls_addr: 127.0.0.1:443
tls_server_name: file.example.net
tls_names: [file.example.net, 10.0.0.5]
nginx_cert_path: /file/cert.pem
nginx_key_path: /file/key.pem
nginx_container: forlock-nginx
`), 0o600))

	st, err := resolve(t, []string{"--config", cfgFile}, nil)
	require.NoError(t, err)
	require.Equal(t, TLSConfig{Addr: "127.0.0.1:443", ServerName: "file.example.net", Names: []string{"file.example.net", "10.0.0.5"},
		CertPath: "/file/cert.pem", KeyPath: "/file/key.pem", Container: "forlock-nginx"}, st.cfg.TLS, "container paths are not resolved against the file's directory")

	st, err = resolve(t, []string{"--config", cfgFile, "--tls-addr", "[::1]:8443", "--tls-server-name", "flag.example.net",
		"--tls-names", "a.example.net,b.example.net", "--nginx-cert-path", "/flag/cert.pem", "--nginx-key-path", "/flag/key.pem",
		"--nginx-container", "edge"}, nil)
	require.NoError(t, err)
	require.Equal(t, TLSConfig{Addr: "[::1]:8443", ServerName: "flag.example.net", Names: []string{"a.example.net", "b.example.net"},
		CertPath: "/flag/cert.pem", KeyPath: "/flag/key.pem", Container: "edge"}, st.cfg.TLS)

	st, err = resolve(t, []string{"--config", cfgFile, "--tls-names", ""}, nil)
	require.NoError(t, err)
	require.Empty(t, st.cfg.TLS.Names, "an empty flag clears the file's names")
}

func TestParseConfigTLS(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    TLSConfig
		wantErr string
	}{
		{"all", "version: 1\ntls_addr: 127.0.0.1:443\ntls_server_name: n.example.net\ntls_names: n.example.net, 127.0.0.1\n" +
			"nginx_cert_path: /c.pem\nnginx_key_path: /k.pem\nnginx_container: forlock-nginx\n",
			TLSConfig{Addr: "127.0.0.1:443", ServerName: "n.example.net", Names: []string{"n.example.net", "127.0.0.1"},
				CertPath: "/c.pem", KeyPath: "/k.pem", Container: "forlock-nginx"}, ""},
		{"bad addr", "version: 1\ntls_addr: nginx\n", TLSConfig{}, `tls settings: tls addr "nginx": want HOST:PORT`},
		{"names not a list", "version: 1\ntls_names: {a: b}\n", TLSConfig{}, "line 2: tls_names: must be a list of names"},
		{"relative cert path", "version: 1\nnginx_cert_path: cert.pem\n", TLSConfig{}, `tls settings: nginx cert path "cert.pem"`},
		{"unknown container", "version: 1\ncontainers: [api]\nnginx_container: web\n", TLSConfig{},
			`tls settings: nginx container "web" is not among the containers (api)`},
		{"typo", "version: 1\ntls_adr: x:1\n", TLSConfig{}, `line 2: unknown key 'tls_adr' (did you mean tls_addr?)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseConfig([]byte(tt.in))
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got.cfg.TLS)
		})
	}
}
