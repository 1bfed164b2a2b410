package controlplane

import (
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/forlock/fleet/controlplane/internal/alerts"
	"github.com/forlock/fleet/controlplane/internal/enroll"
	"github.com/forlock/fleet/controlplane/internal/notify"
	"github.com/forlock/fleet/controlplane/internal/scheduler"
	"github.com/forlock/fleet/controlplane/internal/snapshot"
	"github.com/forlock/fleet/controlplane/internal/wal"
	"github.com/forlock/fleet/internal/settings"
)

// configVersion is the only config file format version read.
const configVersion = 1

// cpSettings is everything flags, environment and config file decide.
type cpSettings struct {
	cfg       Config
	vault     VaultConfig
	schedules []FileBackupSchedule
	verify    []FileVerifySchedule
	// alerting.thresholds and alerting.overrides as written.
	thresholds alerts.ThresholdsFile
	overrides  []alerts.OverrideFile
	logLevel   slog.Level
	logFormat  string
}

// dur is a default duration as an operator writes it: 24h, not 24h0m0s.
func dur(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// snapshotsS3Hint says where an S3 key of scheduled snapshots goes instead
// of the config file: a file, or the environment.
func snapshotsS3Hint(what, key string) string {
	return fmt.Sprintf("put the S3 %s in a file only the control plane can read and set snapshots.%s_file, or use FORLOCK_CONTROLPLANE_SNAPSHOTS_%s",
		what, key, strings.ToUpper(key))
}

// table is the control plane's settings, each declared once: the config
// file key (dotted for a section), flag (--key-with-dashes unless named),
// environment variable (FORLOCK_CONTROLPLANE_KEY unless named), default,
// help and where the value goes. deploy/examples/controlplane.yaml shows a
// config file.
func (st *cpSettings) table() *settings.Table {
	c, l, v, ct, sn, al := &st.cfg, &st.cfg.Limits, &st.vault, &st.cfg.Certs, &st.cfg.Snapshots.S3, &st.cfg.Notify
	t := &settings.Table{Name: "forlock-controlplane", Version: configVersion, MaxFileSize: 1 << 20,
		ConfigEnv: "FORLOCK_CONTROLPLANE_CONFIG", EnvPrefix: "FORLOCK_CONTROLPLANE_"}
	t.Settings = []settings.Setting{
		{Key: "data_dir", Env: "FORLOCK_DATA_DIR", Value: settings.String(&c.DataDir), Default: DefaultDataDir,
			Help: "data directory: CA, keys, database (mode 0700)"},
		{Key: "listen", Env: "FORLOCK_LISTEN", Value: settings.String(&c.Listen), Default: DefaultListen, Help: "gRPC listen address, host:port"},
		{Key: "advertise_names", Flag: "advertise-name", Env: "FORLOCK_ADVERTISE_NAMES", Value: settings.List(&c.AdvertiseNames),
			Help: "DNS names and IPs agents use to reach this control plane, repeatable or comma-separated; localhost and 127.0.0.1 are always in the certificate"},
		{Key: "heartbeat_interval", Value: settings.Duration(&c.HeartbeatInterval), Default: dur(DefaultHeartbeatInterval),
			Help: "heartbeat interval agents use, 100ms to 10m"},
		{Key: "agent_cert_ttl", Value: settings.Duration(&c.AgentCertTTL), Default: dur(DefaultAgentCertTTL),
			Help: "lifetime of agent certificates, 1s to 720h"},
		{Key: "agent_cert_grace", Value: settings.Duration(&c.AgentCertGrace), Default: dur(enroll.DefaultGrace),
			Help: "how long an agent's previous certificate stays valid after a renewal, at most " + dur(enroll.MaxGrace)},
		{Key: "log_level", Value: settings.LogLevel(&st.logLevel), Default: "info", Help: "debug, info, warn or error"},
		{Key: "log_format", Value: settings.LogFormat(&st.logFormat), Default: "json", Help: "json or text"},
		{Key: "backup_keys", Value: settings.String(&c.BackupKeys), Default: BackupKeysLocal,
			Help: "what wraps backup data keys: local (the key file in the data dir) or vault-transit"},
		{Key: "wal_retention", Value: settings.Duration(&c.WALRetention), Default: dur(scheduler.DefaultWALRetention),
			Help: "how long archived WAL is kept; WAL the oldest kept physical base backup needs is kept longer"},
		{Key: "archive_key_rotation", Value: settings.Duration(&c.ArchiveKeyRotation), Default: dur(wal.DefaultRotation),
			Help: "how long a node's WAL archive key is current before the control plane sends a new one, 1s to 720h"},
		{Key: "backup_schedules", Value: settings.YAML(&st.schedules, "yaml"),
			Help: "scheduled backups and their retention: a list of {name, cron, selector, only, pg_format, dest, s3_bucket, s3_prefix, max_parallel, keep}"},
		{Key: "verify_schedules", Value: settings.YAML(&st.verify, "yaml"),
			Help: "scheduled restore drills of each node's newest restore point: a list of {name, cron, selector}; unset: weekly, Sundays 04:00 UTC, every node; [] turns them off"},

		// Prometheus metrics (docs/operations.md, "Metrics").
		{Key: "metrics_listen", Value: settings.String(&c.Metrics.Listen),
			Help: "host:port of the /metrics listener, e.g. 127.0.0.1:9464; empty: no metrics (default). Beyond loopback metrics_token_file is required"},
		{Key: "metrics_token_file", Value: settings.String(&c.Metrics.TokenFile),
			Help: "file holding the bearer token scrapes of metrics_listen must send (mode 0600, at least 16 characters); required unless it listens on loopback"},
		{Key: "metrics_pprof", Value: settings.Bool(&c.Metrics.Pprof), Default: "false",
			Help: "also serve Go's profiler at /debug/pprof/ on metrics_listen (behind the same token)"},

		// Built-in alerting (docs/operations.md, "Alerts").
		{Key: "alerting.evaluation_interval", Value: settings.Duration(&c.Alerting.EvaluationInterval),
			Help: "time between two evaluations of the alert conditions, 100ms to 1h (default: heartbeat_interval)"},
		{Key: "alerting.job_alert_duration", Value: settings.Duration(&c.Alerting.JobAlertDuration), Default: dur(alerts.DefaultJobAlertDuration),
			Help: "how long ForlockJobFailed fires for a failed or partially failed job"},
		{Key: "alerting.thresholds", Value: settings.YAML(&st.thresholds, "yaml"),
			Help: "alert thresholds for every node, any of {disk_free_ratio: 0.1, memory_used_ratio: 0.9, cpu_used_ratio: 0.85, api_p95_seconds: 0.5, db_connections_ratio: 0.9, failed_logins_per_minute: 10, certificate_warning: 336h, certificate_critical: 72h, backup_max_age: 26h, wal_archive_max_lag: 5m} (the defaults shown)"},
		{Key: "alerting.overrides", Value: settings.YAML(&st.overrides, "yaml"),
			Help: "per-label thresholds: a list of {selector, thresholds}; the first entry whose selector matches a node applies, over alerting.thresholds"},

		// HashiCorp Vault; set when any vault setting is.
		{Key: "vault.address", Value: settings.String(&v.Address), Help: "Vault address, https://HOST:8200"},
		{Key: "vault.ca_file", Value: settings.String(&v.CAFile), Help: "PEM CA bundle that verifies Vault (default: the system roots)"},
		{Key: "vault.namespace", Value: settings.String(&v.Namespace), Help: "Vault Enterprise namespace"},
		{Key: "vault.token_file", Value: settings.String(&v.TokenFile), Help: "file holding a Vault token (mode 0600), read again at every login"},
		{Key: "vault.role_id", Value: settings.String(&v.RoleID), Help: "AppRole role ID, instead of a token"},
		{Key: "vault.secret_id_file", Value: settings.String(&v.SecretIDFile), Help: "file holding the AppRole secret ID (mode 0600)"},
		{Key: "vault.approle_mount", Value: settings.String(&v.AppRoleMount), Help: "AppRole auth mount (default approle)"},
		{Key: "vault.pki_mount", Value: settings.String(&v.PKIMount), Help: "PKI secrets engine mount (default pki)"},
		{Key: "vault.pki_role", Value: settings.String(&v.PKIRole), Help: "PKI role that issues the nodes' certificates"},
		{Key: "vault.kv_mount", Value: settings.String(&v.KVMount), Help: "KV version 2 mount (default secret)"},
		{Key: "vault.transit_mount", Value: settings.String(&v.TransitMount), Help: "Transit mount (default transit)"},
		{Key: "vault.transit_key", Value: settings.String(&v.TransitKey), Help: "Transit key that wraps backup data keys (aes256-gcm96)"},
		{Key: "vault.request_timeout", Value: settings.Duration(&v.RequestTimeout), Help: "timeout of each Vault call, retries included (default 10s)"},
		{Key: "vault.allow_insecure_http", Value: settings.Bool(&v.AllowInsecureHTTP),
			Help: "accept an http:// address that is not loopback (the token travels in clear)"},

		// The nodes' nginx certificates.
		{Key: "certs.domain", Value: settings.String(&ct.Domain), Help: "nodes' certificates are for <node>.<domain> (default: the node name)"},
		{Key: "certs.extra_names", Value: settings.List(&ct.ExtraNames), Help: "names added to every node's certificate"},
		{Key: "certs.kv_path", Value: settings.String(&ct.KVPath), Help: "where certs rotate --source kv reads, under kv_mount; {node} is the node (default forlock/tls/{node})"},
		{Key: "certs.ttl", Value: settings.Duration(&ct.TTL), Help: "lifetime asked of Vault PKI, 1h to 9528h (default 2160h)"},

		// The control plane's own snapshots.
		{Key: "snapshots.schedule", Value: settings.String(&c.Snapshots.Cron),
			Help: "when to save a control-plane snapshot, five cron fields in UTC or @daily; empty: never (default)"},
		{Key: "snapshots.dir", Value: settings.String(&c.Snapshots.Dir),
			Help: "absolute directory for scheduled snapshots, named controlplane-<UTC time>.snap (mode 0600)"},
		{Key: "snapshots.keep", Value: settings.Int(&c.Snapshots.Keep), Default: strconv.Itoa(snapshot.DefaultKeep),
			Help: "scheduled snapshots kept in snapshots.dir or under the S3 prefix; older ones are deleted"},
		{Key: "snapshots.passphrase_file", Value: settings.String(&c.Snapshots.PassphraseFile),
			Help: "file holding the passphrase scheduled snapshots are encrypted to (mode 0600, at least 12 characters)"},
		{Key: "snapshots.transit_key", Value: settings.String(&c.Snapshots.TransitKey),
			Help: "Vault Transit key (aes256-gcm96, on vault.transit_mount) scheduled snapshots are encrypted to, instead of a passphrase"},
		{Key: "snapshots.s3_endpoint", Value: settings.String(&sn.Endpoint),
			Help: "S3-compatible server for scheduled snapshots instead of snapshots.dir, HOST:PORT without scheme"},
		{Key: "snapshots.s3_bucket", Value: settings.String(&sn.Bucket), Help: "bucket of scheduled snapshots (it must exist)"},
		{Key: "snapshots.s3_prefix", Value: settings.String(&sn.Prefix), Help: "folder of the bucket they go in, e.g. controlplane"},
		{Key: "snapshots.s3_access_key", Value: settings.String(&sn.AccessKey), Flag: settings.NoFlag, Alt: "snapshots.s3_access_key_file",
			Secret: snapshotsS3Hint("access key", "s3_access_key"), Help: "S3 access key of scheduled snapshots"},
		{Key: "snapshots.s3_access_key_file", Value: settings.String(&sn.AccessKeyFile), Path: true,
			Help: "file holding the S3 access key (mode 0600), read at every save"},
		{Key: "snapshots.s3_secret_key", Value: settings.String(&sn.SecretKey), Flag: settings.NoFlag, Alt: "snapshots.s3_secret_key_file",
			Secret: snapshotsS3Hint("secret key", "s3_secret_key"), Help: "S3 secret key of scheduled snapshots"},
		{Key: "snapshots.s3_secret_key_file", Value: settings.String(&sn.SecretKeyFile), Path: true,
			Help: "file holding the S3 secret key (mode 0600), read at every save"},
		{Key: "snapshots.s3_tls", Value: settings.Bool(&sn.TLS), Help: "talk https to the S3 server"},
		{Key: "snapshots.s3_region", Value: settings.String(&sn.Region), Help: "S3 region (default us-east-1)"},

		// The audit log.
		{Key: "audit.sink", Value: settings.String(&c.Audit.Sink),
			Help: "JSON-lines file every audit record and checkpoint is appended to, for a log shipper to take off the machine (mode 0600)"},
		{Key: "audit.retention", Value: settings.Duration(&c.Audit.Retention), Default: "0s",
			Help: "how long audit records are kept; 0 keeps them all (pruning leaves a signed anchor: verify still works)"},
		{Key: "audit.verify_interval", Value: settings.Duration(&c.Audit.VerifyInterval), Default: dur(DefaultAuditVerifyInterval),
			Help: "how often the control plane verifies the audit log's chain itself (ForlockAuditChainBroken, forlock_audit_chain_intact)"},
		{Key: "audit.require_reason", Value: settings.Bool(&c.Audit.RequireReason), Default: "false",
			Help: "refuse destructive calls (restore, backup deletion, rollback, upgrade, node removal, identity revocation, rewrapping backup keys) that give no --reason"},

		// Delivery of the built-in alerting's notifications (docs/operations.md,
		// "Alert notifications").
		{Key: "alerting.alertmanager_urls", Value: settings.List(&al.AlertmanagerURLs),
			Help: "Alertmanager base URLs, e.g. https://am.internal:9093, repeatable or comma-separated; each gets every firing and resolved alert"},
		{Key: "alerting.webhook_urls", Value: settings.List(&al.WebhookURLs),
			Help: "URLs that get one JSON POST per firing or resolved alert, repeatable or comma-separated"},
		{Key: "alerting.webhook_token_file", Value: settings.String(&al.WebhookTokenFile), Path: true,
			Help: "file holding a bearer token sent to the webhooks (mode 0600), read at every post"},
		{Key: "alerting.ca_file", Value: settings.String(&al.CAFile), Path: true,
			Help: "PEM CA bundle that verifies the receivers' HTTPS certificates (default: the system roots)"},
		{Key: "alerting.resend_interval", Value: settings.Duration(&al.ResendInterval), Default: dur(notify.DefaultResendInterval),
			Help: "how often firing alerts are posted to Alertmanager again, 1s to 1h; keep it below Alertmanager's resolve_timeout (5m)"},
		{Key: "alerting.allow_insecure_http", Value: settings.Bool(&al.AllowInsecureHTTP), Default: "false",
			Help: "accept http:// receiver URLs that are not loopback (alerts and the webhook token travel in clear)"},

		// What clients without a valid credential, agents' input and a
		// full disk may cost.
		{Key: "limits.auth_failures", Flag: "auth-failures", Value: settings.Int(&l.AuthFailures), Default: strconv.Itoa(DefaultAuthFailures),
			Help: "failed authentications an address may make per --auth-failure-window before it is blocked"},
		{Key: "limits.auth_failure_window", Flag: "auth-failure-window", Value: settings.Duration(&l.AuthFailureWindow),
			Default: dur(DefaultAuthFailureWindow), Help: "period of --auth-failures"},
		{Key: "limits.auth_block", Flag: "auth-block", Value: settings.Duration(&l.AuthBlock), Default: dur(DefaultAuthBlock),
			Help: "how long an address over --auth-failures gets ResourceExhausted for wrong credentials"},
		{Key: "limits.tracked_addresses", Flag: "tracked-addresses", Value: settings.Int(&l.TrackedAddresses), Default: strconv.Itoa(DefaultTrackedAddresses),
			Help: "addresses whose failed authentications are remembered; the least recently seen is forgotten"},
		{Key: "limits.unauthenticated_conns_per_address", Flag: "unauth-conns-per-address", Value: settings.Int(&l.UnauthConnsPerAddress),
			Default: strconv.Itoa(DefaultUnauthConnsPerAddress), Help: "open connections per address without a client certificate or a valid token"},
		{Key: "limits.handshake_timeout", Flag: "handshake-timeout", Value: settings.Duration(&l.HandshakeTimeout), Default: dur(DefaultHandshakeTimeout),
			Help: "time a new connection has for its TLS handshake and HTTP/2 preface"},
		{Key: "limits.idle_conn_timeout", Flag: "idle-conn-timeout", Value: settings.Duration(&l.IdleConnTimeout), Default: dur(DefaultIdleConnTimeout),
			Help: "close connections with no call in progress for this long"},
		{Key: "limits.max_header_bytes", Flag: "max-header-bytes", Value: settings.Int(&l.MaxHeaderBytes), Default: strconv.Itoa(DefaultMaxHeaderBytes),
			Help: "largest request metadata accepted, in bytes"},
		{Key: "limits.disk_reserve", Flag: "disk-reserve", Value: settings.Func(&l.DiskReserve, "size", parseReserve),
			Help: "free space the data dir keeps; below it writes are refused, e.g. 64MiB, 0 for none (default 64MiB)"},
		{Key: "limits.progress_event_interval", Flag: "progress-event-interval", Value: settings.Duration(&l.ProgressEventInterval),
			Help: "least time between two stored progress events of a task (default 1s)"},
		{Key: "limits.progress_message_max", Flag: "progress-message-max", Value: settings.Int(&l.ProgressMessageMax),
			Help: "longest stored progress message in bytes (default 512)"},
		{Key: "limits.job_events_max", Flag: "job-events-max", Value: settings.Int(&l.JobEventsMax),
			Help: "job event cap before progress events are sampled, plus --job-events-per-task per task (default 1000)"},
		{Key: "limits.job_events_per_task", Flag: "job-events-per-task", Value: settings.Int(&l.JobEventsPerTask),
			Help: "job event cap added per task (default 20)"},
		{Key: "limits.job_events_sample_every", Flag: "job-events-sample-every", Value: settings.Int(&l.JobEventsSampleEvery),
			Help: "past the cap, store one progress event in this many (default 100)"},
		{Key: "limits.agent_control_rate", Flag: "agent-control-rate", Value: settings.Float(&l.AgentControlRate),
			Help: "heartbeats, pings and pongs a second per agent stream (default max(10, 5 per heartbeat interval))"},
		{Key: "limits.agent_control_burst", Flag: "agent-control-burst", Value: settings.Int(&l.AgentControlBurst),
			Help: "burst of those (default twice the rate, at least 20)"},
	}
	t.CheckFile = func() error {
		if _, err := backupSchedules(st.schedules); err != nil {
			return err
		}
		_, _, err := alerts.Resolve(st.thresholds, st.overrides)
		return err
	}
	return t
}

// resolveConfig builds the Config from the flags in fs, the environment,
// the config file and the defaults, in that order, and validates it.
func resolveConfig(fs *pflag.FlagSet, getenv func(string) string) (*Config, *slog.Level, string, error) {
	var st cpSettings
	t := st.table()
	if err := t.Resolve(fs, getenv); err != nil {
		return nil, nil, "", err
	}
	cfg := st.cfg
	if t.Given("vault.") {
		cfg.Vault = &st.vault
	}
	var err error
	if cfg.BackupSchedules, err = backupSchedules(st.schedules); err != nil {
		return nil, nil, "", fmt.Errorf("backup_schedules: %w", err)
	}
	if cfg.VerifySchedules, err = verifySchedules(st.verify); err != nil {
		return nil, nil, "", fmt.Errorf("verify_schedules: %w", err)
	}
	if cfg.Alerting.Thresholds, cfg.Alerting.Overrides, err = alerts.Resolve(st.thresholds, st.overrides); err != nil {
		return nil, nil, "", err
	}
	cfg.RotateAdminToken, _ = fs.GetBool("rotate-admin-token")
	cfg.ConfigFile, _ = fs.GetString("config")
	if !fs.Changed("config") {
		cfg.ConfigFile = getenv(t.ConfigEnv)
	}
	return &cfg, &st.logLevel, st.logFormat, nil
}

// parseReserve parses a disk reserve: "0" is none (-1).
func parseReserve(s string) (int64, error) {
	n, err := settings.ParseSize(s)
	if err != nil {
		return 0, fmt.Errorf("disk reserve: %w", err)
	}
	if n == 0 {
		return -1, nil
	}
	return n, nil
}
