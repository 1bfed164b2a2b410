package agent

import (
	"bytes"
	"context"
	"flag"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/forlock/fleet/internal/settings"
)

func TestParseConfig(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    func(*agentSettings)
		wantErr string
	}{
		{"full", `
version: 1
control_plane: cp.example.net:7443
ca_file: /etc/forlock-agent/ca.pem
join_token_file: /etc/forlock-agent/token
state_dir: /var/lib/x
name: web-1
log_level: debug
log_format: text
`, func(c *agentSettings) {
			c.cfg.ControlPlane = "cp.example.net:7443"
			c.cfg.CAFile = "/etc/forlock-agent/ca.pem"
			c.cfg.JoinTokenFile = "/etc/forlock-agent/token"
			c.cfg.StateDir = "/var/lib/x"
			c.cfg.Name = "web-1"
			c.logLevel = slog.LevelDebug
			c.logFormat = "text"
		}, ""},
		{"health settings", `
version: 1
docker_host: unix:///run/docker.sock
containers: [api, db]
compose_project: forlock
api_url: https://127.0.0.1:8443
api_ca_file: /etc/forlock/ca.pem
api_server_name: vault.example.net
postgres_dsn_file: /etc/forlock-agent/dsn
redis_addr: 127.0.0.1:6379
redis_password_file: /etc/forlock-agent/redis
check_timeout: 3s
`, func(c *agentSettings) {
			c.cfg.Health.DockerHost = "unix:///run/docker.sock"
			c.cfg.Health.Containers = []string{"api", "db"}
			c.cfg.Health.ComposeProject = "forlock"
			c.cfg.Health.APIURL = "https://127.0.0.1:8443"
			c.cfg.Health.APICAFile = "/etc/forlock/ca.pem"
			c.cfg.Health.APIServerName = "vault.example.net"
			c.cfg.Health.PostgresDSNFile = "/etc/forlock-agent/dsn"
			c.cfg.Health.RedisAddr = "127.0.0.1:6379"
			c.cfg.Health.RedisPasswordFile = "/etc/forlock-agent/redis"
			c.cfg.Health.CheckTimeout = 3 * time.Second
		}, ""},
		{"containers as text", "version: 1\ncontainers: a, b\n", func(c *agentSettings) { c.cfg.Health.Containers = []string{"a", "b"} }, ""},
		{"containers block list", "version: 1\ncontainers:\n  - a\n  - b\n", func(c *agentSettings) { c.cfg.Health.Containers = []string{"a", "b"} }, ""},
		{"insecure", "version: 1\napi_insecure_skip_verify: true\n", func(c *agentSettings) { c.cfg.Health.APIInsecureSkipVerify = true }, ""},
		{"insecure not bool", "version: 1\napi_insecure_skip_verify: yes please\n", nil, "line 2: api_insecure_skip_verify: must be true or false"},
		{"containers mapping", "version: 1\ncontainers: {a: 1}\n", nil, "line 2: containers: must be a list of names"},
		{"containers nested", "version: 1\ncontainers: [[a]]\n", nil, "line 2: containers: must be a list of names"},
		{"empty container", "version: 1\ncontainers: [a, '']\n", nil, `health check settings: container name ""`},
		{"bad check timeout", "version: 1\ncheck_timeout: soon\n", nil, `line 2: check_timeout: "soon" is not a duration`},
		{"check timeout too long", "version: 1\ncheck_timeout: 1m\n", nil, "health check settings: check timeout 1m0s: want a duration from 0"},
		{"bad api url", "version: 1\napi_url: 127.0.0.1\n", nil, `health check settings: api url "127.0.0.1": want the API's base URL`},
		{"ca and insecure", "version: 1\napi_ca_file: ca.pem\napi_insecure_skip_verify: true\n", nil, "api CA file and api insecure skip verify are both set"},
		{"bad redis addr", "version: 1\nredis_addr: localhost\n", nil, `health check settings: redis address "localhost": want HOST:PORT`},
		{"bad docker host", "version: 1\ndocker_host: /var/run/docker.sock\n", nil, `docker host "/var/run/docker.sock": want an address such as unix://`},
		{"dsn refused", "version: 1\npostgres_dsn: postgres://u:p@h/db\n", nil, "line 2: postgres_dsn is not read from the config file: put the DSN in a file"},
		{"redis password refused", "version: 1\nredis_password: x\n", nil, "line 2: redis_password is not read from the config file"},
		{"minimal", "version: 1\n", nil, ""},
		{"null value keeps the default", "version: 1\nname:\n", nil, ""},
		{"numeric name", "version: 1\nname: 123\n", func(c *agentSettings) { c.cfg.Name = "123" }, ""},
		{"empty", "", nil, `empty: it needs at least "version: 1"`},
		{"comment only", "# nothing\n", nil, `empty: it needs at least "version: 1"`},
		{"missing version", "name: a\n", nil, `version is missing: add "version: 1"`},
		{"version 2", "version: 2\n", nil, "line 1: version 2 is not supported: forlock-agent reads version 1"},
		{"version text", "version: \"1\"\n", nil, "line 1: version must be a whole number"},
		{"unknown field with suggestion", "version: 1\nstate_dri: /x\n", nil, `line 2: unknown key 'state_dri' (did you mean state_dir?)`},
		{"unknown field", "version: 1\nfoo: bar\n", nil, `line 2: unknown key 'foo': remove it; the known keys here are version, control_plane, ca_file, join_token_file,`},
		{"join token refused", "version: 1\njoin_token: s3cret\n", nil, "line 2: join_token is not read from the config file"},
		{"duplicate", "version: 1\nname: a\nname: b\n", nil, "line 3: key name is set twice: keep one"},
		{"list value", "version: 1\nname: [a, b]\n", nil, "line 2: name: must be a single value, not a list or mapping"},
		{"bool value", "version: 1\nname: true\n", nil, "line 2: name: must be a text value; quote it"},
		{"not a mapping", "- a\n- b\n", nil, "line 1: expected a mapping of settings"},
		{"two documents", "version: 1\n---\nversion: 1\n", nil, "holds more than one YAML document"},
		{"bad yaml", "version: [1\n", nil, "not valid YAML"},
		{"bad log level", "version: 1\nlog_level: loud\n", nil, `line 2: log_level: log level "loud" is not one of debug, info, warn, error`},
		{"bad log format", "version: 1\nlog_format: xml\n", nil, `line 2: log_format: log format "xml" is not json or text`},
		{"backup settings", `
version: 1
compose_dir: /srv/forlock
backup_dirs: [/var/backups/forlock, /mnt/backups]
s3_endpoint: s3.example.net:9000
s3_access_key_file: /etc/forlock-agent/s3-ak
s3_secret_key_file: /etc/forlock-agent/s3-sk
s3_tls: true
s3_region: eu-west-1
`, func(c *agentSettings) {
			c.cfg.Backup.ComposeDir = "/srv/forlock"
			c.cfg.Backup.BackupDirs = []string{"/var/backups/forlock", "/mnt/backups"}
			c.cfg.Backup.S3Endpoint = "s3.example.net:9000"
			c.cfg.Backup.S3AccessKeyFile = "/etc/forlock-agent/s3-ak"
			c.cfg.Backup.S3SecretKeyFile = "/etc/forlock-agent/s3-sk"
			c.cfg.Backup.S3TLS = true
			c.cfg.Backup.S3Region = "eu-west-1"
		}, ""},
		{"s3 endpoint, keys from the environment", "version: 1\ns3_endpoint: 127.0.0.1:9000\n", func(c *agentSettings) { c.cfg.Backup.S3Endpoint = "127.0.0.1:9000" }, ""},
		{"relative compose dir", "version: 1\ncompose_dir: forlock\n", nil, `backup settings: compose dir: "forlock" must be an absolute path`},
		{"unclean backup dir", "version: 1\nbackup_dirs: [/var/backups/../etc]\n", nil, `backup settings: backup directory "/var/backups/../etc": must be a clean path`},
		{"root backup dir", "version: 1\nbackup_dirs: [/]\n", nil, `allowing the whole file system is refused`},
		{"relative backup dir", "version: 1\nbackup_dirs: backups\n", nil, `backup directory "backups": must be an absolute path`},
		{"duplicate backup dir", "version: 1\nbackup_dirs: [/b, /b]\n", nil, `backup directory "/b" is listed twice`},
		{"s3 endpoint with scheme", "version: 1\ns3_endpoint: https://s3.example.net\n", nil, `s3 endpoint "https://s3.example.net": want HOST:PORT without scheme`},
		{"s3 keys without endpoint", "version: 1\ns3_access_key_file: /k\n", nil, "S3 settings are given but no s3 endpoint"},
		{"s3 bad region", "version: 1\ns3_endpoint: s3:9000\ns3_region: EU West\n", nil, `s3 region "EU West"`},
		{"s3 tls not bool", "version: 1\ns3_tls: sure\n", nil, "line 2: s3_tls: must be true or false"},
		{"s3 secret refused", "version: 1\ns3_secret_key: abc\n", nil, "line 2: s3_secret_key is not read from the config file: put the key in a file"},
		{"s3 access key refused", "version: 1\ns3_access_key: abc\n", nil, "line 2: s3_access_key is not read from the config file"},
		{"too large", "version: 1\n#" + strings.Repeat("x", 64<<10), nil, "larger than 65536 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseConfig([]byte(tt.in))
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			want, err := parseConfig([]byte("version: 1\n"))
			require.NoError(t, err)
			if tt.want != nil {
				tt.want(&want)
			}
			require.Equal(t, want, got)
		})
	}
}

func TestConfigFileResolvesRelativePaths(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "agent.yaml")
	require.NoError(t, os.WriteFile(p, []byte("version: 1\nca_file: ca.pem\njoin_token_file: /abs/token\nstate_dir: state\n"+
		"api_ca_file: node-ca.pem\npostgres_dsn_file: dsn\nredis_password_file: secrets/redis\n"+
		"s3_endpoint: s3:9000\ns3_access_key_file: s3/ak\ns3_secret_key_file: /abs/sk\nregistry_password_file: reg\n"), 0o600))
	st, err := resolve(t, []string{"--config", p}, nil)
	require.NoError(t, err)
	h, b := st.cfg.Health, st.cfg.Backup
	require.Equal(t, filepath.Join(dir, "node-ca.pem"), h.APICAFile)
	require.Equal(t, filepath.Join(dir, "dsn"), h.PostgresDSNFile)
	require.Equal(t, filepath.Join(dir, "secrets/redis"), h.RedisPasswordFile)
	require.Equal(t, filepath.Join(dir, "ca.pem"), st.cfg.CAFile)
	require.Equal(t, "/abs/token", st.cfg.JoinTokenFile)
	require.Equal(t, filepath.Join(dir, "s3/ak"), b.S3AccessKeyFile)
	require.Equal(t, "/abs/sk", b.S3SecretKeyFile)
	require.Equal(t, filepath.Join(dir, "state"), st.cfg.StateDir)
	require.Equal(t, filepath.Join(dir, "reg"), st.cfg.Upgrade.RegistryPasswordFile)

	_, err = resolve(t, []string{"--config", filepath.Join(dir, "missing.yaml")}, nil)
	require.ErrorContains(t, err, "config file: open ")

	require.NoError(t, os.WriteFile(p, []byte("version: 1\nbogus: 1\n"), 0o600))
	_, err = resolve(t, []string{"--config", p}, nil)
	require.ErrorContains(t, err, "config file "+p+": line 2: unknown key 'bogus'")
}

var updateDocs = flag.Bool("update", false, "rewrite the settings table in docs/operations.md")

// Every setting has its file key, flag (a secret: only where the process
// list may show it), environment variable, a default that parses, and
// help; --help lists them all, and docs/operations.md shows the table.
func TestSettingsTableComplete(t *testing.T) {
	tb := (&agentSettings{}).table()
	require.NoError(t, tb.Check())
	var stdout bytes.Buffer
	require.Equal(t, settings.ExitOK, run(context.Background(), []string{"--help"}, &stdout, &bytes.Buffer{}, func(string) string { return "" }, nil))
	require.NoError(t, tb.SyncDoc(filepath.Join("..", "docs", "operations.md"), *updateDocs))
	for _, s := range tb.Settings {
		require.Contains(t, stdout.String(), tb.EnvName(s), s.Key)
		if f := s.FlagName(); f != "" {
			require.Contains(t, stdout.String(), "--"+f+" ", s.Key)
		}
	}
}

func FuzzParseConfig(f *testing.F) {
	f.Add([]byte("version: 1\ncontrol_plane: cp:7443\nname: web-1\n"))
	f.Add([]byte("version: 1\nname: &a x\nstate_dir: *a\n"))
	f.Add([]byte("version: 1\n---\n"))
	f.Add([]byte("{version: 1, log_level: debug}"))
	f.Add([]byte("version: 1\nname: [a]\n"))
	f.Add([]byte("version: 1\ncontainers: [a, b]\ncompose_project: p\napi_url: https://127.0.0.1\n"))
	f.Add([]byte("version: 1\ncontainers: &c [a]\napi_insecure_skip_verify: true\ncheck_timeout: 2s\nredis_addr: r:6379\n"))
	f.Add([]byte("version: 1\ncompose_dir: /opt/forlock\nbackup_dirs: [/var/backups/forlock, /mnt/b]\ns3_endpoint: s3:9000\ns3_tls: true\ns3_region: us-east-1\n"))
	f.Add([]byte("version: 1\nbackup_dirs: /a, /a/../b\ns3_access_key_file: k\ns3_secret_key_file: s\n"))
	f.Add([]byte("version: 1\ntls_addr: 127.0.0.1:443\ntls_names: [a.example.net, 10.0.0.5]\nnginx_cert_path: /c\nnginx_key_path: /k\nnginx_container: forlock-nginx\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := parseConfig(data)
		if err != nil {
			require.NotEmpty(t, err.Error())
			return
		}
		require.NoError(t, st.checkFile(), "a parsed file holds valid settings")
		h, err := st.cfg.Health.validate()
		require.NoError(t, err)
		require.NotEmpty(t, h.Containers)
		require.Empty(t, st.cfg.JoinToken+h.PostgresDSN+h.RedisPassword+st.cfg.Backup.S3AccessKey+st.cfg.Backup.S3SecretKey+st.cfg.Upgrade.RegistryPassword,
			"a secret is never read from the file")
		require.Contains(t, []string{"json", "text"}, st.logFormat)
	})
}

func TestExampleConfigParses(t *testing.T) {
	st, err := resolve(t, []string{"--config", filepath.Join("..", "deploy", "examples", "agent.yaml")}, nil)
	require.NoError(t, err, "deploy/examples/agent.yaml must stay valid")
	require.Equal(t, "fleet.example.com:7443", st.cfg.ControlPlane)
	require.Equal(t, []string{"forlock-eu-1.example.com"}, st.cfg.TLS.Names)
}
