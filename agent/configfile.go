package agent

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// configVersion is the only config file format version this agent reads.
const configVersion = 1

// maxConfigSize bounds the config file; a real one is a few hundred bytes.
const maxConfigSize = 64 << 10

// fileConfig is the agent's YAML config file:
//
//	version: 1
//	control_plane: cp.example.net:7443
//	ca_file: /etc/forlock-agent/ca.pem        # relative paths are relative to the file
//	join_token_file: /etc/forlock-agent/join-token
//	state_dir: /var/lib/forlock-agent
//	name: web-1
//	log_level: info                           # debug, info, warn, error
//	log_format: json                          # json or text
//	# Health checks of the node's Forlock stack (every one optional):
//	docker_host: unix:///var/run/docker.sock  # default DOCKER_HOST, else this
//	containers: [forlock-api, forlock-postgres, forlock-redis, forlock-nginx]
//	compose_project: forlock                  # find containers by compose label
//	api_url: https://127.0.0.1                # base of /api/v1/health
//	api_ca_file: /etc/forlock/ca.pem          # or api_insecure_skip_verify: true
//	api_server_name: vault.example.net
//	postgres_dsn_file: /etc/forlock-agent/postgres-dsn
//	redis_addr: 127.0.0.1:6379
//	redis_password_file: /etc/forlock-agent/redis-password
//	check_timeout: 4s
//	# Backups and restores (every one optional):
//	compose_dir: /opt/forlock                 # archived by config backups
//	backup_dirs: [/var/backups/forlock]       # allowed destinations; the first is the default
//	s3_endpoint: s3.example.net:9000          # S3-compatible server, no scheme
//	s3_access_key_file: /etc/forlock-agent/s3-access-key
//	s3_secret_key_file: /etc/forlock-agent/s3-secret-key
//	s3_tls: true
//	s3_region: us-east-1
//	# The node's TLS certificate (cert_rotate tasks, certificate check; every one optional):
//	tls_addr: 127.0.0.1:443                   # nginx's 443; default: api_url's host:port if https
//	tls_server_name: node1.example.net        # SNI; default the first of tls_names
//	tls_names: [node1.example.net]            # every installed certificate must cover them
//	nginx_cert_path: /etc/nginx/tls/cert.pem  # inside the nginx container
//	nginx_key_path: /etc/nginx/tls/key.pem
//	nginx_container: forlock-nginx            # default: the containers' nginx
//	# Upgrades (optional): the image registry's credentials for pulls.
//	registry_username: forlock-deploy
//	registry_password_file: /etc/forlock-agent/registry-password
//
// Secrets are never read from this file: the file is often world-readable,
// a token, DSN or password file need not be. The join token, the
// PostgreSQL DSN, the Redis password and the S3 keys come from files named
// here, or from the environment.
type fileConfig struct {
	Version       int
	ControlPlane  string
	CAFile        string
	JoinTokenFile string
	StateDir      string
	Name          string
	LogLevel      string
	LogFormat     string

	DockerHost            string
	Containers            []string
	ComposeProject        string
	APIURL                string
	APICAFile             string
	APIServerName         string
	APIInsecureSkipVerify bool
	PostgresDSNFile       string
	RedisAddr             string
	RedisPasswordFile     string
	CheckTimeout          string

	ComposeDir      string
	BackupDirs      []string
	S3Endpoint      string
	S3AccessKeyFile string
	S3SecretKeyFile string
	S3TLS           bool
	S3Region        string

	TLSAddr        string
	TLSServerName  string
	TLSNames       []string
	NginxCertPath  string
	NginxKeyPath   string
	NginxContainer string

	RegistryUsername     string
	RegistryPasswordFile string
}

// fields maps each config key to where its value goes; its order is the
// order of the help text.
func (fc *fileConfig) fields() []configField {
	return []configField{
		{key: "version", num: &fc.Version},
		{key: "control_plane", str: &fc.ControlPlane},
		{key: "ca_file", str: &fc.CAFile},
		{key: "join_token_file", str: &fc.JoinTokenFile},
		{key: "state_dir", str: &fc.StateDir},
		{key: "name", str: &fc.Name},
		{key: "log_level", str: &fc.LogLevel},
		{key: "log_format", str: &fc.LogFormat},
		{key: "docker_host", str: &fc.DockerHost},
		{key: "containers", list: &fc.Containers},
		{key: "compose_project", str: &fc.ComposeProject},
		{key: "api_url", str: &fc.APIURL},
		{key: "api_ca_file", str: &fc.APICAFile},
		{key: "api_server_name", str: &fc.APIServerName},
		{key: "api_insecure_skip_verify", boolean: &fc.APIInsecureSkipVerify},
		{key: "postgres_dsn_file", str: &fc.PostgresDSNFile},
		{key: "redis_addr", str: &fc.RedisAddr},
		{key: "redis_password_file", str: &fc.RedisPasswordFile},
		{key: "check_timeout", str: &fc.CheckTimeout},
		{key: "compose_dir", str: &fc.ComposeDir},
		{key: "backup_dirs", list: &fc.BackupDirs},
		{key: "s3_endpoint", str: &fc.S3Endpoint},
		{key: "s3_access_key_file", str: &fc.S3AccessKeyFile},
		{key: "s3_secret_key_file", str: &fc.S3SecretKeyFile},
		{key: "s3_tls", boolean: &fc.S3TLS},
		{key: "s3_region", str: &fc.S3Region},
		{key: "tls_addr", str: &fc.TLSAddr},
		{key: "tls_server_name", str: &fc.TLSServerName},
		{key: "tls_names", list: &fc.TLSNames},
		{key: "nginx_cert_path", str: &fc.NginxCertPath},
		{key: "nginx_key_path", str: &fc.NginxKeyPath},
		{key: "nginx_container", str: &fc.NginxContainer},
		{key: "registry_username", str: &fc.RegistryUsername},
		{key: "registry_password_file", str: &fc.RegistryPasswordFile},
	}
}

// configField is one key and where its value goes: exactly one of the
// pointers is set.
type configField struct {
	key     string
	str     *string
	num     *int
	boolean *bool
	list    *[]string
}

// secretKeys are settings that hold secrets, refused in the file, with
// where to put them instead.
var secretKeys = map[string]string{
	"join_token":        "put the token in a file only the agent can read and set join_token_file, or use " + JoinTokenEnv,
	"postgres_dsn":      "put the DSN in a file only the agent can read and set postgres_dsn_file, or use " + PostgresDSNEnv,
	"redis_password":    "put the password in a file only the agent can read and set redis_password_file, or use " + RedisPasswordEnv,
	"s3_access_key":     "put the key in a file only the agent can read and set s3_access_key_file, or use " + S3AccessKeyEnv,
	"s3_secret_key":     "put the key in a file only the agent can read and set s3_secret_key_file, or use " + S3SecretKeyEnv,
	"registry_password": "put the password in a file only the agent can read and set registry_password_file, or use FORLOCK_REGISTRY_PASSWORD",
}

// loadConfigFile reads and parses the config file at path and resolves its
// relative paths against the file's directory.
func loadConfigFile(path string) (fileConfig, error) {
	f, err := os.Open(path)
	if err != nil {
		return fileConfig{}, fmt.Errorf("config file: %w", err)
	}
	defer func() { _ = f.Close() }()
	data, err := io.ReadAll(io.LimitReader(f, maxConfigSize+1))
	if err != nil {
		return fileConfig{}, fmt.Errorf("config file %s: %w", path, err)
	}
	fc, err := parseConfig(data)
	if err != nil {
		return fileConfig{}, fmt.Errorf("config file %s: %w", path, err)
	}
	dir := filepath.Dir(path)
	for _, p := range []*string{&fc.CAFile, &fc.JoinTokenFile, &fc.StateDir, &fc.APICAFile, &fc.PostgresDSNFile, &fc.RedisPasswordFile,
		&fc.S3AccessKeyFile, &fc.S3SecretKeyFile, &fc.RegistryPasswordFile} {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
	return fc, nil
}

// parseConfig parses the config file's content strictly: one YAML document
// holding one mapping, known keys only, each at most once, scalar values,
// and version 1. Errors give the line and say what to do.
func parseConfig(data []byte) (fileConfig, error) {
	var fc fileConfig
	if len(data) > maxConfigSize {
		return fc, fmt.Errorf("larger than %d bytes: is this the right file?", maxConfigSize)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return fc, fmt.Errorf("empty: it needs at least \"version: %d\"", configVersion)
		}
		return fc, fmt.Errorf("not valid YAML: %w", err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return fc, errors.New("holds more than one YAML document: keep only one")
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if root.Kind != yaml.MappingNode {
		return fc, fmt.Errorf("line %d: expected a mapping of settings such as \"version: %d\"", root.Line, configVersion)
	}
	fields := fc.fields()
	seen := map[string]bool{}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		idx := slices.IndexFunc(fields, func(f configField) bool { return f.key == k.Value })
		if k.Kind != yaml.ScalarNode || idx < 0 {
			return fc, unknownField(k, fields)
		}
		if seen[k.Value] {
			return fc, fmt.Errorf("line %d: field %s is set twice: keep one", k.Line, k.Value)
		}
		seen[k.Value] = true
		if err := decodeField(fields[idx], v); err != nil {
			return fc, err
		}
	}
	switch {
	case !seen["version"]:
		return fc, fmt.Errorf("field version is missing: add \"version: %d\" as the first line", configVersion)
	case fc.Version != configVersion:
		return fc, fmt.Errorf("version %d is not supported: this agent reads version %d", fc.Version, configVersion)
	}
	if fc.LogLevel != "" {
		if _, err := parseLogLevel(fc.LogLevel); err != nil {
			return fc, fmt.Errorf("field log_level: %w", err)
		}
	}
	if fc.LogFormat != "" {
		if err := checkLogFormat(fc.LogFormat); err != nil {
			return fc, fmt.Errorf("field log_format: %w", err)
		}
	}
	if fc.CheckTimeout != "" {
		if _, err := parseCheckTimeout(fc.CheckTimeout); err != nil {
			return fc, fmt.Errorf("field check_timeout: %w", err)
		}
	}
	h, err := fc.health().validate()
	if err != nil {
		return fc, fmt.Errorf("health check settings: %w", err)
	}
	if _, err := fc.backup().check(false); err != nil {
		return fc, fmt.Errorf("backup settings: %w", err)
	}
	if _, err := fc.tls().validate(h); err != nil {
		return fc, fmt.Errorf("tls settings: %w", err)
	}
	return fc, nil
}

// backup returns the file's backup settings.
func (fc fileConfig) backup() BackupConfig {
	return BackupConfig{
		ComposeDir: fc.ComposeDir, BackupDirs: fc.BackupDirs,
		S3Endpoint: fc.S3Endpoint, S3AccessKeyFile: fc.S3AccessKeyFile, S3SecretKeyFile: fc.S3SecretKeyFile,
		S3TLS: fc.S3TLS, S3Region: fc.S3Region,
	}
}

// health returns the file's health check settings; check_timeout must
// have been checked.
func (fc fileConfig) health() HealthConfig {
	d, _ := parseCheckTimeout(fc.CheckTimeout)
	return HealthConfig{
		DockerHost: fc.DockerHost, Containers: fc.Containers, ComposeProject: fc.ComposeProject,
		APIURL: fc.APIURL, APICAFile: fc.APICAFile, APIServerName: fc.APIServerName,
		APIInsecureSkipVerify: fc.APIInsecureSkipVerify,
		PostgresDSNFile:       fc.PostgresDSNFile, RedisAddr: fc.RedisAddr, RedisPasswordFile: fc.RedisPasswordFile,
		CheckTimeout: d,
	}
}

// parseCheckTimeout parses a check timeout such as "4s"; empty is 0 (the
// default).
func parseCheckTimeout(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("check timeout %q is not a duration such as 4s", s)
	}
	return d, nil
}

func decodeField(f configField, v *yaml.Node) error {
	if v.Kind == yaml.AliasNode {
		v = v.Alias
	}
	if f.list != nil {
		return decodeList(f, v)
	}
	if v.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: field %s must be a single value, not a list or mapping", v.Line, f.key)
	}
	if v.Tag == "!!null" {
		return nil // "name:" with nothing after it: leave the default
	}
	if f.num != nil {
		if v.Tag != "!!int" || v.Decode(f.num) != nil {
			return fmt.Errorf("line %d: field %s must be a whole number, e.g. %s: %d", v.Line, f.key, f.key, configVersion)
		}
		return nil
	}
	if f.boolean != nil {
		if v.Tag != "!!bool" || v.Decode(f.boolean) != nil {
			return fmt.Errorf("line %d: field %s must be true or false", v.Line, f.key)
		}
		return nil
	}
	if v.Tag != "!!str" && v.Tag != "!!int" && v.Tag != "!!float" {
		return fmt.Errorf("line %d: field %s must be a text value; quote it if it is meant as one", v.Line, f.key)
	}
	*f.str = v.Value
	return nil
}

// decodeList decodes a list of text values: a YAML sequence, or one value
// with the entries separated by commas.
func decodeList(f configField, v *yaml.Node) error {
	bad := fmt.Errorf("line %d: field %s must be a list of names, e.g. %s: [a, b]", v.Line, f.key, f.key)
	var items []*yaml.Node
	switch {
	case v.Kind == yaml.ScalarNode && v.Tag == "!!null":
		return nil
	case v.Kind == yaml.ScalarNode && v.Tag == "!!str":
		*f.list = nil
		for _, s := range strings.Split(v.Value, ",") {
			*f.list = append(*f.list, strings.TrimSpace(s))
		}
		return nil
	case v.Kind == yaml.SequenceNode:
		items = v.Content
	default:
		return bad
	}
	*f.list = make([]string, 0, len(items))
	for _, it := range items {
		if it.Kind == yaml.AliasNode {
			it = it.Alias
		}
		if it.Kind != yaml.ScalarNode || it.Tag != "!!str" {
			return bad
		}
		*f.list = append(*f.list, it.Value)
	}
	return nil
}

func unknownField(k *yaml.Node, fields []configField) error {
	if hint, ok := secretKeys[k.Value]; ok {
		return fmt.Errorf("line %d: %s is not read from the config file: %s", k.Line, k.Value, hint)
	}
	known := make([]string, len(fields))
	for i, f := range fields {
		known[i] = f.key
	}
	if s := closest(k.Value, known); s != "" {
		return fmt.Errorf("line %d: unknown field %q: did you mean %s?", k.Line, k.Value, s)
	}
	return fmt.Errorf("line %d: unknown field %q: remove it; the known fields are %s", k.Line, k.Value, strings.Join(known, ", "))
}

// closest returns the known key within edit distance 2 of s, if any.
func closest(s string, known []string) string {
	if len(s) > 64 {
		return ""
	}
	best, bestD := "", 3
	for _, k := range known {
		if d := editDistance(s, k); d < bestD {
			best, bestD = k, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// parseLogLevel accepts debug, info, warn and error.
func parseLogLevel(s string) (slog.Level, error) {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("log level %q is not one of debug, info, warn, error", s)
}

func checkLogFormat(s string) error {
	if s != "json" && s != "text" {
		return fmt.Errorf("log format %q is not json or text", s)
	}
	return nil
}
