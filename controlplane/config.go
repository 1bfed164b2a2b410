package controlplane

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/forlock/fleet/controlplane/internal/api"
	"github.com/forlock/fleet/controlplane/internal/enroll"
	"github.com/forlock/fleet/controlplane/internal/scheduler"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// Defaults for every option.
const (
	DefaultDataDir           = "/var/lib/forlock-controlplane"
	DefaultListen            = ":7443"
	DefaultHeartbeatInterval = 10 * time.Second
	DefaultAgentCertTTL      = 24 * time.Hour
	maxConfigFileSize        = 1 << 20
)

// Config is the validated runtime configuration of a control plane.
type Config struct {
	// DataDir holds the CA, the server certificate, the database and the
	// generated forlockctl config. Created with mode 0700 if missing.
	DataDir string
	// Listen is the gRPC listen address, host:port. Port 0 picks a free port.
	Listen string
	// AdvertiseNames are the DNS names and IP addresses agents and operators
	// use to reach this control plane; they go into the server certificate.
	// localhost and 127.0.0.1 are always added.
	AdvertiseNames []string
	// HeartbeatInterval is what agents are told to use.
	HeartbeatInterval time.Duration
	// AgentCertTTL is the lifetime of agent client certificates.
	AgentCertTTL time.Duration
	// AgentCertGrace is how long an agent's previous certificate stays
	// valid after it renewed, while it moves its connections to the new
	// one; default 5m, at most 10m. After it, the old certificate is refused
	// and a renewal from it quarantines the node.
	AgentCertGrace time.Duration
	// RotateAdminToken replaces the admin token at start-up and rewrites
	// forlockctl.yaml, for when that file was lost.
	RotateAdminToken bool
	// Vault, when set, connects the control plane to HashiCorp Vault for
	// the nodes' certificates (PKI, KV v2) and, with BackupKeys
	// "vault-transit", backup data keys (Transit).
	Vault *VaultConfig
	// BackupKeys is what wraps backup data keys: "local" (default, the key
	// file in the data dir) or "vault-transit".
	BackupKeys string
	// Certs says what certificates nodes get from Vault.
	Certs CertsConfig
	// CertCheckInterval is how often the certificate policy (rotate after
	// 90 days or under 30 days left) looks at the fleet; default 1h.
	CertCheckInterval time.Duration
	// BackupSchedules are the backups the control plane makes on its own,
	// and their retention.
	BackupSchedules []scheduler.BackupSchedule
	// RetentionInterval is how often retention looks at the catalog
	// besides after each scheduled backup; default 1h.
	RetentionInterval time.Duration
	// Limits bound what clients without a valid credential, agents' input
	// and a full disk can cost: failed authentications, connections, header
	// size, handshake time, disk reserve, job history, control messages.
	Limits Limits
	// Audit tunes the audit log: an off-machine sink, retention, reasons.
	Audit AuditConfig
	// Logger receives the control plane's logs; nil means discard.
	Logger *slog.Logger

	// enrollHooks, set only by tests, inject faults into enrollment.
	enrollHooks api.EnrollHooks
}

func (c *Config) setDefaults() {
	if c.DataDir == "" {
		c.DataDir = DefaultDataDir
	}
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if c.HeartbeatInterval == 0 {
		c.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if c.AgentCertTTL == 0 {
		c.AgentCertTTL = DefaultAgentCertTTL
	}
	if c.AgentCertGrace == 0 {
		c.AgentCertGrace = enroll.DefaultGrace
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	c.Limits.setDefaults()
}

func (c *Config) validate() error {
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return fmt.Errorf("listen %q: want host:port, e.g. :7443 or 127.0.0.1:7443", c.Listen)
	}
	if c.HeartbeatInterval < 100*time.Millisecond || c.HeartbeatInterval > 10*time.Minute {
		return fmt.Errorf("heartbeat interval %s: must be between 100ms and 10m", c.HeartbeatInterval)
	}
	if c.AgentCertTTL < time.Second || c.AgentCertTTL > 30*24*time.Hour {
		return fmt.Errorf("agent certificate ttl %s: must be between 1s and 720h", c.AgentCertTTL)
	}
	if c.AgentCertGrace < time.Second || c.AgentCertGrace > enroll.MaxGrace {
		return fmt.Errorf("agent certificate grace %s: must be between 1s and %s", c.AgentCertGrace, enroll.MaxGrace)
	}
	switch c.BackupKeys {
	case "", BackupKeysLocal:
	case BackupKeysVaultTransit:
		if c.Vault == nil {
			return errors.New("backup keys vault-transit: configure vault (address, auth, transit_key) too")
		}
	default:
		return fmt.Errorf("backup keys %q: use local or vault-transit", c.BackupKeys)
	}
	if c.Certs.TTL != 0 && (c.Certs.TTL < time.Hour || c.Certs.TTL > 397*24*time.Hour) {
		return fmt.Errorf("certs ttl %s: give 1h to 9528h (397 days)", c.Certs.TTL)
	}
	if c.Certs.Domain != "" && !validHostName(c.Certs.Domain) {
		return fmt.Errorf("certs domain %q: must be a DNS name", c.Certs.Domain)
	}
	for _, n := range c.Certs.ExtraNames {
		if !validHostName(n) {
			return fmt.Errorf("certs extra name %q: must be a DNS name or an IP address", n)
		}
	}
	for _, n := range c.AdvertiseNames {
		if !validHostName(n) {
			return fmt.Errorf("advertise name %q: must be a DNS name or an IP address", n)
		}
	}
	if err := c.Limits.validate(); err != nil {
		return err
	}
	return scheduler.CheckSchedules(c.BackupSchedules)
}

func validHostName(n string) bool {
	if net.ParseIP(n) != nil {
		return true
	}
	if n == "" || len(n) > 253 {
		return false
	}
	for i := 0; i < len(n); i++ {
		c := n[i]
		ok := (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.'
		if !ok {
			return false
		}
	}
	return n[0] != '.' && n[0] != '-' && n[len(n)-1] != '.' && n[len(n)-1] != '-'
}

// FileConfig is the YAML configuration file, version 1. Durations use Go
// syntax ("10s", "24h").
type FileConfig struct {
	Version           int      `yaml:"version"`
	DataDir           string   `yaml:"data_dir"`
	Listen            string   `yaml:"listen"`
	AdvertiseNames    []string `yaml:"advertise_names"`
	HeartbeatInterval string   `yaml:"heartbeat_interval"`
	AgentCertTTL      string   `yaml:"agent_cert_ttl"`
	AgentCertGrace    string   `yaml:"agent_cert_grace"`
	LogLevel          string   `yaml:"log_level"`
	LogFormat         string   `yaml:"log_format"`
	// BackupKeys is "local" or "vault-transit".
	BackupKeys string           `yaml:"backup_keys"`
	Vault      *FileVaultConfig `yaml:"vault"`
	Certs      FileCertsConfig  `yaml:"certs"`
	// BackupSchedules are scheduled backups and their retention.
	BackupSchedules []FileBackupSchedule `yaml:"backup_schedules"`
	// Limits bound what clients without a valid credential, agents' input
	// and a full disk can cost.
	Limits FileLimits `yaml:"limits"`
}

// FileBackupSchedule is one entry of backup_schedules.
type FileBackupSchedule struct {
	Name        string   `yaml:"name"`
	Cron        string   `yaml:"cron"`
	Selector    string   `yaml:"selector"`
	Only        []string `yaml:"only"`
	PGFormat    string   `yaml:"pg_format"`
	Dest        string   `yaml:"dest"`
	S3Bucket    string   `yaml:"s3_bucket"`
	S3Prefix    string   `yaml:"s3_prefix"`
	MaxParallel uint32   `yaml:"max_parallel"`
	Keep        string   `yaml:"keep"`
}

// schedule turns the entry into a checked scheduler.BackupSchedule.
func (f FileBackupSchedule) schedule() (scheduler.BackupSchedule, error) {
	sc := scheduler.BackupSchedule{Name: f.Name, Cron: f.Cron, Selector: f.Selector, MaxParallel: f.MaxParallel}
	kinds := map[string]forlockv1.ArtifactKind{"postgres": forlockv1.ArtifactKind_ARTIFACT_KIND_POSTGRES,
		"redis": forlockv1.ArtifactKind_ARTIFACT_KIND_REDIS, "config": forlockv1.ArtifactKind_ARTIFACT_KIND_CONFIG}
	for _, o := range f.Only {
		k, ok := kinds[o]
		if !ok {
			return sc, fmt.Errorf("backup schedule %s: only %q: use postgres, redis or config", f.Name, o)
		}
		sc.Only = append(sc.Only, k)
	}
	switch f.PGFormat {
	case "", "logical":
		sc.PostgresFormat = forlockv1.PostgresFormat_POSTGRES_FORMAT_LOGICAL
	case "physical":
		sc.PostgresFormat = forlockv1.PostgresFormat_POSTGRES_FORMAT_PHYSICAL
	default:
		return sc, fmt.Errorf("backup schedule %s: pg_format %q: use logical or physical", f.Name, f.PGFormat)
	}
	switch {
	case f.Dest != "" && f.S3Bucket != "":
		return sc, fmt.Errorf("backup schedule %s: give dest or s3_bucket, not both", f.Name)
	case f.S3Prefix != "" && f.S3Bucket == "":
		return sc, fmt.Errorf("backup schedule %s: s3_prefix needs s3_bucket", f.Name)
	case f.Dest != "":
		sc.Destination = &forlockv1.BackupDestination{Kind: &forlockv1.BackupDestination_Dir{Dir: f.Dest}}
	case f.S3Bucket != "":
		sc.Destination = &forlockv1.BackupDestination{Kind: &forlockv1.BackupDestination_S3{S3: &forlockv1.S3Location{Bucket: f.S3Bucket, Prefix: f.S3Prefix}}}
	}
	if f.Keep != "" {
		d, err := time.ParseDuration(f.Keep)
		if err != nil {
			return sc, fmt.Errorf("backup schedule %s: keep %q: want a duration such as 720h (30 days)", f.Name, f.Keep)
		}
		sc.Keep = d
	}
	return sc, sc.Check()
}

// backupSchedules turns the file's backup_schedules into checked ones.
func (fc *FileConfig) backupSchedules() ([]scheduler.BackupSchedule, error) {
	var out []scheduler.BackupSchedule
	for _, f := range fc.BackupSchedules {
		sc, err := f.schedule()
		if err != nil {
			return nil, err
		}
		out = append(out, sc)
	}
	return out, nil
}

// FileVaultConfig is the vault section of the config file. Secrets are
// named by file (token_file, secret_id_file), never written in it.
type FileVaultConfig struct {
	Address        string `yaml:"address"`
	CAFile         string `yaml:"ca_file"`
	Namespace      string `yaml:"namespace"`
	TokenFile      string `yaml:"token_file"`
	RoleID         string `yaml:"role_id"`
	SecretIDFile   string `yaml:"secret_id_file"`
	AppRoleMount   string `yaml:"approle_mount"`
	PKIMount       string `yaml:"pki_mount"`
	PKIRole        string `yaml:"pki_role"`
	KVMount        string `yaml:"kv_mount"`
	TransitMount   string `yaml:"transit_mount"`
	TransitKey     string `yaml:"transit_key"`
	RequestTimeout string `yaml:"request_timeout"`
	// AllowInsecureHTTP accepts an http:// address that is not loopback
	// (the token then travels in clear); logged as a warning.
	AllowInsecureHTTP bool `yaml:"allow_insecure_http"`
}

// FileCertsConfig is the certs section of the config file.
type FileCertsConfig struct {
	Domain     string   `yaml:"domain"`
	ExtraNames []string `yaml:"extra_names"`
	KVPath     string   `yaml:"kv_path"`
	TTL        string   `yaml:"ttl"`
}

// vaultConfig turns the file's vault section into the runtime one.
func (f *FileVaultConfig) vaultConfig() (*VaultConfig, error) {
	if f == nil {
		return nil, nil
	}
	c := &VaultConfig{Address: f.Address, CAFile: f.CAFile, Namespace: f.Namespace, TokenFile: f.TokenFile,
		RoleID: f.RoleID, SecretIDFile: f.SecretIDFile, AppRoleMount: f.AppRoleMount, PKIMount: f.PKIMount,
		PKIRole: f.PKIRole, KVMount: f.KVMount, TransitMount: f.TransitMount, TransitKey: f.TransitKey,
		AllowInsecureHTTP: f.AllowInsecureHTTP}
	if f.RequestTimeout != "" {
		d, err := time.ParseDuration(f.RequestTimeout)
		if err != nil {
			return nil, fmt.Errorf("vault request_timeout %q: want a duration such as 10s", f.RequestTimeout)
		}
		c.RequestTimeout = d
	}
	return c, nil
}

// ParseConfigFile parses a control plane config file strictly: unknown
// fields, a missing or unknown version and malformed durations are errors.
func ParseConfigFile(data []byte) (*FileConfig, error) {
	if len(data) > maxConfigFileSize {
		return nil, fmt.Errorf("config file larger than %d bytes", maxConfigFileSize)
	}
	var fc FileConfig
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&fc); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("config file: %w", err)
	}
	if fc.Version != 1 {
		return nil, fmt.Errorf("config file: version %d not supported: set \"version: 1\"", fc.Version)
	}
	for field, v := range map[string]string{"heartbeat_interval": fc.HeartbeatInterval, "agent_cert_ttl": fc.AgentCertTTL, "agent_cert_grace": fc.AgentCertGrace, "certs.ttl": fc.Certs.TTL} {
		if v == "" {
			continue
		}
		if _, err := time.ParseDuration(v); err != nil {
			return nil, fmt.Errorf("config file: %s %q: want a duration such as 10s or 24h", field, v)
		}
	}
	if _, err := fc.Vault.vaultConfig(); err != nil {
		return nil, fmt.Errorf("config file: %w", err)
	}
	if _, err := fc.backupSchedules(); err != nil {
		return nil, fmt.Errorf("config file: %w", err)
	}
	if _, err := fc.Limits.limits(); err != nil {
		return nil, fmt.Errorf("config file: %w", err)
	}
	switch fc.LogLevel {
	case "", "debug", "info", "warn", "error":
	default:
		return nil, fmt.Errorf("config file: log_level %q: use debug, info, warn or error", fc.LogLevel)
	}
	switch fc.LogFormat {
	case "", "json", "text":
	default:
		return nil, fmt.Errorf("config file: log_format %q: use json or text", fc.LogFormat)
	}
	return &fc, nil
}

// LoadConfigFile reads and parses a config file.
func LoadConfigFile(path string) (*FileConfig, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config file: %w", err)
	}
	fc, err := ParseConfigFile(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return fc, nil
}
