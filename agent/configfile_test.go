package agent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseConfig(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    fileConfig
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
`, fileConfig{Version: 1, ControlPlane: "cp.example.net:7443", CAFile: "/etc/forlock-agent/ca.pem", JoinTokenFile: "/etc/forlock-agent/token",
			StateDir: "/var/lib/x", Name: "web-1", LogLevel: "debug", LogFormat: "text"}, ""},
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
`, fileConfig{Version: 1, DockerHost: "unix:///run/docker.sock", Containers: []string{"api", "db"}, ComposeProject: "forlock",
			APIURL: "https://127.0.0.1:8443", APICAFile: "/etc/forlock/ca.pem", APIServerName: "vault.example.net",
			PostgresDSNFile: "/etc/forlock-agent/dsn", RedisAddr: "127.0.0.1:6379", RedisPasswordFile: "/etc/forlock-agent/redis",
			CheckTimeout: "3s"}, ""},
		{"containers as text", "version: 1\ncontainers: a, b\n", fileConfig{Version: 1, Containers: []string{"a", "b"}}, ""},
		{"containers block list", "version: 1\ncontainers:\n  - a\n  - b\n", fileConfig{Version: 1, Containers: []string{"a", "b"}}, ""},
		{"insecure", "version: 1\napi_insecure_skip_verify: true\n", fileConfig{Version: 1, APIInsecureSkipVerify: true}, ""},
		{"insecure not bool", "version: 1\napi_insecure_skip_verify: yes please\n", fileConfig{}, "line 2: field api_insecure_skip_verify must be true or false"},
		{"containers mapping", "version: 1\ncontainers: {a: 1}\n", fileConfig{}, "line 2: field containers must be a list of names"},
		{"containers nested", "version: 1\ncontainers: [[a]]\n", fileConfig{}, "line 2: field containers must be a list of names"},
		{"empty container", "version: 1\ncontainers: [a, '']\n", fileConfig{}, `health check settings: container name ""`},
		{"bad check timeout", "version: 1\ncheck_timeout: soon\n", fileConfig{}, `field check_timeout: check timeout "soon" is not a duration`},
		{"check timeout too long", "version: 1\ncheck_timeout: 1m\n", fileConfig{}, "health check settings: check timeout 1m0s: want a duration from 0"},
		{"bad api url", "version: 1\napi_url: 127.0.0.1\n", fileConfig{}, `health check settings: api url "127.0.0.1": want the API's base URL`},
		{"ca and insecure", "version: 1\napi_ca_file: ca.pem\napi_insecure_skip_verify: true\n", fileConfig{}, "api CA file and api insecure skip verify are both set"},
		{"bad redis addr", "version: 1\nredis_addr: localhost\n", fileConfig{}, `health check settings: redis address "localhost": want HOST:PORT`},
		{"bad docker host", "version: 1\ndocker_host: /var/run/docker.sock\n", fileConfig{}, `docker host "/var/run/docker.sock": want an address such as unix://`},
		{"dsn refused", "version: 1\npostgres_dsn: postgres://u:p@h/db\n", fileConfig{}, "line 2: postgres_dsn is not read from the config file: put the DSN in a file"},
		{"redis password refused", "version: 1\nredis_password: x\n", fileConfig{}, "line 2: redis_password is not read from the config file"},
		{"minimal", "version: 1\n", fileConfig{Version: 1}, ""},
		{"null value keeps the default", "version: 1\nname:\n", fileConfig{Version: 1}, ""},
		{"numeric name", "version: 1\nname: 123\n", fileConfig{Version: 1, Name: "123"}, ""},
		{"empty", "", fileConfig{}, `empty: it needs at least "version: 1"`},
		{"comment only", "# nothing\n", fileConfig{}, `empty: it needs at least "version: 1"`},
		{"missing version", "name: a\n", fileConfig{}, `field version is missing: add "version: 1"`},
		{"version 2", "version: 2\n", fileConfig{}, "version 2 is not supported: this agent reads version 1"},
		{"version text", "version: \"1\"\n", fileConfig{}, "line 1: field version must be a whole number"},
		{"unknown field with suggestion", "version: 1\nstate_dri: /x\n", fileConfig{}, `line 2: unknown field "state_dri": did you mean state_dir?`},
		{"unknown field", "version: 1\nfoo: bar\n", fileConfig{}, `line 2: unknown field "foo": remove it; the known fields are version, control_plane,`},
		{"join token refused", "version: 1\njoin_token: s3cret\n", fileConfig{}, "line 2: join_token is not read from the config file"},
		{"duplicate", "version: 1\nname: a\nname: b\n", fileConfig{}, "line 3: field name is set twice: keep one"},
		{"list value", "version: 1\nname: [a, b]\n", fileConfig{}, "line 2: field name must be a single value, not a list or mapping"},
		{"bool value", "version: 1\nname: true\n", fileConfig{}, "line 2: field name must be a text value; quote it"},
		{"not a mapping", "- a\n- b\n", fileConfig{}, "line 1: expected a mapping of settings"},
		{"two documents", "version: 1\n---\nversion: 1\n", fileConfig{}, "holds more than one YAML document"},
		{"bad yaml", "version: [1\n", fileConfig{}, "not valid YAML"},
		{"bad log level", "version: 1\nlog_level: loud\n", fileConfig{}, `field log_level: log level "loud" is not one of debug, info, warn, error`},
		{"bad log format", "version: 1\nlog_format: xml\n", fileConfig{}, `field log_format: log format "xml" is not json or text`},
		{"backup settings", `
version: 1
compose_dir: /srv/forlock
backup_dirs: [/var/backups/forlock, /mnt/backups]
s3_endpoint: s3.example.net:9000
s3_access_key_file: /etc/forlock-agent/s3-ak
s3_secret_key_file: /etc/forlock-agent/s3-sk
s3_tls: true
s3_region: eu-west-1
`, fileConfig{Version: 1, ComposeDir: "/srv/forlock", BackupDirs: []string{"/var/backups/forlock", "/mnt/backups"},
			S3Endpoint: "s3.example.net:9000", S3AccessKeyFile: "/etc/forlock-agent/s3-ak", S3SecretKeyFile: "/etc/forlock-agent/s3-sk",
			S3TLS: true, S3Region: "eu-west-1"}, ""},
		{"s3 endpoint, keys from the environment", "version: 1\ns3_endpoint: 127.0.0.1:9000\n", fileConfig{Version: 1, S3Endpoint: "127.0.0.1:9000"}, ""},
		{"relative compose dir", "version: 1\ncompose_dir: forlock\n", fileConfig{}, `backup settings: compose dir: "forlock" must be an absolute path`},
		{"unclean backup dir", "version: 1\nbackup_dirs: [/var/backups/../etc]\n", fileConfig{}, `backup settings: backup directory "/var/backups/../etc": must be a clean path`},
		{"root backup dir", "version: 1\nbackup_dirs: [/]\n", fileConfig{}, `allowing the whole file system is refused`},
		{"relative backup dir", "version: 1\nbackup_dirs: backups\n", fileConfig{}, `backup directory "backups": must be an absolute path`},
		{"duplicate backup dir", "version: 1\nbackup_dirs: [/b, /b]\n", fileConfig{}, `backup directory "/b" is listed twice`},
		{"s3 endpoint with scheme", "version: 1\ns3_endpoint: https://s3.example.net\n", fileConfig{}, `s3 endpoint "https://s3.example.net": want HOST:PORT without scheme`},
		{"s3 keys without endpoint", "version: 1\ns3_access_key_file: /k\n", fileConfig{}, "S3 settings are given but no s3 endpoint"},
		{"s3 bad region", "version: 1\ns3_endpoint: s3:9000\ns3_region: EU West\n", fileConfig{}, `s3 region "EU West"`},
		{"s3 tls not bool", "version: 1\ns3_tls: sure\n", fileConfig{}, "line 2: field s3_tls must be true or false"},
		{"s3 secret refused", "version: 1\ns3_secret_key: abc\n", fileConfig{}, "line 2: s3_secret_key is not read from the config file: put the key in a file"},
		{"s3 access key refused", "version: 1\ns3_access_key: abc\n", fileConfig{}, "line 2: s3_access_key is not read from the config file"},
		{"too large", "version: 1\n#" + strings.Repeat("x", maxConfigSize), fileConfig{}, "larger than 65536 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseConfig([]byte(tt.in))
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

func TestLoadConfigFileResolvesRelativePaths(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "agent.yaml")
	require.NoError(t, os.WriteFile(p, []byte("version: 1\nca_file: ca.pem\njoin_token_file: /abs/token\nstate_dir: state\n"+
		"api_ca_file: node-ca.pem\npostgres_dsn_file: dsn\nredis_password_file: secrets/redis\n"+
		"s3_endpoint: s3:9000\ns3_access_key_file: s3/ak\ns3_secret_key_file: /abs/sk\n"), 0o600))
	fc, err := loadConfigFile(p)
	require.NoError(t, err)
	require.Equal(t, filepath.Join(dir, "node-ca.pem"), fc.APICAFile)
	require.Equal(t, filepath.Join(dir, "dsn"), fc.PostgresDSNFile)
	require.Equal(t, filepath.Join(dir, "secrets/redis"), fc.RedisPasswordFile)
	require.Equal(t, filepath.Join(dir, "ca.pem"), fc.CAFile)
	require.Equal(t, "/abs/token", fc.JoinTokenFile)
	require.Equal(t, filepath.Join(dir, "s3/ak"), fc.S3AccessKeyFile)
	require.Equal(t, "/abs/sk", fc.S3SecretKeyFile)
	require.Equal(t, filepath.Join(dir, "state"), fc.StateDir)

	_, err = loadConfigFile(filepath.Join(dir, "missing.yaml"))
	require.ErrorContains(t, err, "config file: open ")

	require.NoError(t, os.WriteFile(p, []byte("version: 1\nbogus: 1\n"), 0o600))
	_, err = loadConfigFile(p)
	require.ErrorContains(t, err, "config file "+p+": line 2: unknown field")
}

func TestEditDistance(t *testing.T) {
	require.Equal(t, 0, editDistance("name", "name"))
	require.Equal(t, 2, editDistance("state_dri", "state_dir"))
	require.Equal(t, 3, editDistance("", "abc"))
	require.Empty(t, closest("completely_else", []string{"name"}))
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
		fc, err := parseConfig(data)
		if err != nil {
			require.NotEmpty(t, err.Error())
			return
		}
		require.Equal(t, configVersion, fc.Version)
		if fc.LogLevel != "" {
			_, err := parseLogLevel(fc.LogLevel)
			require.NoError(t, err)
		}
		if fc.LogFormat != "" {
			require.NoError(t, checkLogFormat(fc.LogFormat))
		}
		h, err := fc.health().validate()
		require.NoError(t, err, "a parsed file holds valid health check settings")
		require.NotEmpty(t, h.Containers)
		b, err := fc.backup().check(false)
		require.NoError(t, err, "a parsed file holds valid backup settings")
		require.NotEmpty(t, b.BackupDirs)
		require.NotEmpty(t, b.ComposeDir)
		tc, err := fc.tls().validate(h)
		require.NoError(t, err, "a parsed file holds valid tls settings")
		require.NotEmpty(t, tc.Container)
	})
}

func TestExampleConfigParses(t *testing.T) {
	fc, err := loadConfigFile(filepath.Join("..", "deploy", "examples", "agent.yaml"))
	require.NoError(t, err, "deploy/examples/agent.yaml must stay valid")
	require.NotEmpty(t, fc.ControlPlane)
}
