package controlplane

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/forlock/fleet/controlplane/internal/alerts"
	"github.com/forlock/fleet/controlplane/internal/api"
	"github.com/forlock/fleet/controlplane/internal/enroll"
	"github.com/forlock/fleet/controlplane/internal/metrics"
	"github.com/forlock/fleet/controlplane/internal/notify"
	"github.com/forlock/fleet/controlplane/internal/scheduler"
	"github.com/forlock/fleet/controlplane/internal/snapshot"
)

// Defaults for every option.
const (
	DefaultDataDir           = "/var/lib/forlock-controlplane"
	DefaultListen            = ":7443"
	DefaultHeartbeatInterval = 10 * time.Second
	DefaultAgentCertTTL      = 24 * time.Hour
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
	// VerifySchedules are the restore drills the control plane runs on
	// its own (default: scheduler.DefaultVerifySchedule).
	VerifySchedules []scheduler.VerifySchedule
	// RetentionInterval is how often retention looks at the catalog
	// besides after each scheduled backup; default 1h.
	RetentionInterval time.Duration
	// WALRetention is how long archived WAL is kept (what the oldest kept
	// physical base backup needs is kept longer); default 7 days.
	WALRetention time.Duration
	// ArchiveKeyRotation is how long a node's WAL archive key is current;
	// default 24h.
	ArchiveKeyRotation time.Duration
	// Limits bound what clients without a valid credential, agents' input
	// and a full disk can cost: failed authentications, connections, header
	// size, handshake time, disk reserve, job history, control messages.
	Limits Limits
	// Audit tunes the audit log: an off-machine sink, retention, reasons.
	Audit AuditConfig
	// Snapshots is when the control plane saves its own snapshots, where,
	// and how many it keeps; off unless a cron is given.
	Snapshots snapshot.Schedule
	// Alerting is the built-in alerting: evaluation interval, thresholds
	// and their per-label overrides, how long a failed job alerts.
	Alerting AlertingConfig
	// AlertSink delivers alert notifications (package notify); nil: the
	// firing set is only shown (forlockctl alerts, status), not sent.
	AlertSink alerts.Sink
	// Metrics is the Prometheus listener (/metrics, and /debug/pprof/ when
	// asked): off unless Metrics.Listen is set; beyond loopback it needs a
	// bearer token file.
	Metrics metrics.Config
	// Notify is where the built-in alerting's notifications go
	// (Alertmanager, webhooks; the alerting.* receiver settings); nothing
	// is sent unless a URL is set.
	Notify notify.Config
	// ConfigFile is the config file the settings were read from, if any;
	// snapshots carry a copy of it.
	ConfigFile string
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
	if c.ArchiveKeyRotation != 0 && (c.ArchiveKeyRotation < time.Second || c.ArchiveKeyRotation > 30*24*time.Hour) {
		return fmt.Errorf("archive key rotation %s: give 1s to 720h", c.ArchiveKeyRotation)
	}
	if c.WALRetention < 0 {
		return fmt.Errorf("wal retention %s: give a positive duration", c.WALRetention)
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
	if err := c.Alerting.check(); err != nil {
		return err
	}
	if c.Audit.VerifyInterval < 0 {
		return fmt.Errorf("audit verify interval %s: give a positive duration (default %s)", c.Audit.VerifyInterval, DefaultAuditVerifyInterval)
	}
	if err := c.Metrics.Check(); err != nil {
		return err
	}
	if err := c.Notify.Check(); err != nil {
		return err
	}
	if err := c.Limits.validate(); err != nil {
		return err
	}
	if err := c.Snapshots.Check(); err != nil {
		return err
	}
	if c.Snapshots.Cron != "" && c.Snapshots.TransitKey != "" && c.Vault == nil {
		return errors.New("snapshots transit_key: scheduled snapshots to a Vault Transit key need the vault section (address and login) too")
	}
	if err := scheduler.CheckSchedules(c.BackupSchedules); err != nil {
		return err
	}
	return scheduler.CheckVerifySchedules(c.VerifySchedules)
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

// AlertingConfig is the built-in alerting's (docs/operations.md, "Alerts").
type AlertingConfig struct {
	// EvaluationInterval is the time between two evaluations; 0: the
	// heartbeat interval.
	EvaluationInterval time.Duration
	// JobAlertDuration is how long ForlockJobFailed fires; 0: 1h.
	JobAlertDuration time.Duration
	// Thresholds apply to nodes no override selects; zero: the guide's
	// (alerts.Defaults).
	Thresholds alerts.Thresholds
	// Overrides are per-label thresholds; the first whose selector
	// matches a node's labels applies to it.
	Overrides []alerts.Override
}

func (a AlertingConfig) check() error {
	if a.EvaluationInterval != 0 && (a.EvaluationInterval < 100*time.Millisecond || a.EvaluationInterval > time.Hour) {
		return fmt.Errorf("alerting evaluation interval %s: give 100ms to 1h, or 0 for the heartbeat interval", a.EvaluationInterval)
	}
	if a.JobAlertDuration < 0 {
		return fmt.Errorf("alerting job alert duration %s: give a positive duration, e.g. 1h", a.JobAlertDuration)
	}
	return nil
}
