package agent

import (
	"fmt"
	"log/slog"
	"strings"

	"github.com/spf13/pflag"

	"github.com/forlock/fleet/agent/internal/backup"
	"github.com/forlock/fleet/agent/internal/certs"
	"github.com/forlock/fleet/agent/internal/checks"
	"github.com/forlock/fleet/agent/internal/dockerrt"
	"github.com/forlock/fleet/agent/internal/logins"
	"github.com/forlock/fleet/agent/internal/walarchive"
	"github.com/forlock/fleet/internal/backupstore"
	"github.com/forlock/fleet/internal/settings"
)

// configVersion is the only config file format version this agent reads.
const configVersion = 1

// registryPasswordEnv may hold the image registry's password.
const registryPasswordEnv = "FORLOCK_REGISTRY_PASSWORD" //nolint:gosec // the name of a variable, not a credential

// agentSettings is everything flags, environment and config file decide.
type agentSettings struct {
	cfg       Config
	logLevel  slog.Level
	logFormat string
}

// secretHint says where a secret goes instead of the config file, which is
// often world-readable.
func secretHint(what, key, env string) string {
	return fmt.Sprintf("put the %s in a file only the agent can read and set %s_file, or use %s", what, key, env)
}

// table is the agent's settings, each declared once: the config file key,
// flag (--key-with-dashes), environment variable (FORLOCK_AGENT_KEY unless
// named), default, help and where the value goes. deploy/examples/agent.yaml
// shows a config file.
func (st *agentSettings) table() *settings.Table {
	c, h, b, tl, u := &st.cfg, &st.cfg.Health, &st.cfg.Backup, &st.cfg.TLS, &st.cfg.Upgrade
	t := &settings.Table{Name: "forlock-agent", Version: configVersion, MaxFileSize: 64 << 10,
		ConfigEnv: "FORLOCK_AGENT_CONFIG", EnvPrefix: "FORLOCK_AGENT_"}
	t.Settings = []settings.Setting{
		{Key: "control_plane", Value: settings.String(&c.ControlPlane), Help: "control plane address, HOST:PORT"},
		{Key: "ca_file", Value: settings.String(&c.CAFile), Path: true, Help: "PEM fleet CA bundle that verifies the control plane when enrolling"},
		{Key: "join_token", Value: settings.String(&c.JoinToken), Env: JoinTokenEnv, Secret: secretHint("token", "join_token", JoinTokenEnv),
			Help: "join token (visible in the process list: prefer " + JoinTokenEnv + " or --join-token-file)"},
		{Key: "join_token_file", Value: settings.String(&c.JoinTokenFile), Path: true,
			Help: "file holding a join token, read again at every enrollment attempt; wins over the token when it holds one"},
		{Key: "state_dir", Value: settings.String(&c.StateDir), Path: true, Default: DefaultStateDir, Help: "directory for the node identity"},
		{Key: "name", Value: settings.String(&c.Name), Help: "node name (default: the host name, lower-cased)"},
		{Key: "log_level", Value: settings.LogLevel(&st.logLevel), Default: "info", Help: "debug, info, warn or error"},
		{Key: "log_format", Value: settings.LogFormat(&st.logFormat), Default: "json", Help: "json or text"},

		// Health checks of the node's Forlock stack.
		{Key: "docker_host", Value: settings.String(&h.DockerHost),
			Help: "Docker Engine address (default DOCKER_HOST, else unix:///var/run/docker.sock)"},
		{Key: "containers", Value: settings.List(&h.Containers), Default: strings.Join(dockerrt.DefaultNames, ","),
			Help: "expected containers, by container or compose service name"},
		{Key: "compose_project", Value: settings.String(&h.ComposeProject), Help: "find the containers by this compose project label instead of by name"},
		{Key: "api_url", Value: settings.String(&h.APIURL), Default: DefaultAPIURL, Help: "base URL of the Forlock API for the /api/v1/health checks"},
		{Key: "api_ca_file", Value: settings.String(&h.APICAFile), Path: true,
			Help: "PEM CA bundle that verifies the API's certificate (default: the system roots)"},
		{Key: "api_server_name", Value: settings.String(&h.APIServerName), Help: "name to verify the API's certificate against, if not the URL's host"},
		{Key: "api_insecure_skip_verify", Value: settings.Bool(&h.APIInsecureSkipVerify), Help: "accept any certificate from the API"},
		{Key: "postgres_dsn", Value: settings.String(&h.PostgresDSN), Flag: settings.NoFlag, Env: PostgresDSNEnv, Alt: "postgres_dsn_file",
			Secret: secretHint("DSN", "postgres_dsn", PostgresDSNEnv), Help: "PostgreSQL DSN for the connectivity check"},
		{Key: "postgres_dsn_file", Value: settings.String(&h.PostgresDSNFile), Path: true,
			Help: "file holding the PostgreSQL DSN for the connectivity check, read at every check"},
		{Key: "redis_addr", Value: settings.String(&h.RedisAddr), Help: "Redis HOST:PORT for the connectivity check"},
		{Key: "redis_password", Value: settings.String(&h.RedisPassword), Flag: settings.NoFlag, Env: RedisPasswordEnv, Alt: "redis_password_file",
			Secret: secretHint("password", "redis_password", RedisPasswordEnv), Help: "Redis password"},
		{Key: "redis_password_file", Value: settings.String(&h.RedisPasswordFile), Path: true, Help: "file holding the Redis password"},
		{Key: "check_timeout", Value: settings.Duration(&h.CheckTimeout), Default: checks.DefaultCheckTimeout.String(),
			Help: "timeout of each health check, at most 30s"},
		{Key: "login_paths", Value: settings.List(&h.LoginPaths), Default: logins.DefaultLoginPath,
			Help: "the API's login paths: their 401 answers in nginx's access log are the logins check's failed logins"},
		{Key: "trusted_proxies", Value: settings.List(&h.TrustedProxies),
			Help: "CIDRs of proxies in front of nginx: for their requests the logins check counts the X-Forwarded-For client (nginx's main log format)"},

		// Backups and restores.
		{Key: "compose_dir", Value: settings.String(&b.ComposeDir), Default: backup.DefaultComposeDir,
			Help: "the node's compose directory, archived by config backups"},
		{Key: "backup_dirs", Value: settings.List(&b.BackupDirs), Default: backupstore.DefaultDir,
			Help: "host directories backups may be written to and restored from; the first is the default"},
		{Key: "drill_cpus", Value: settings.Float(&b.DrillCPUs), Default: "1",
			Help: "CPU limit of each scratch container of a restore drill (verify_backup), in CPUs"},
		{Key: "drill_memory", Value: settings.Size(&b.DrillMemory), Default: "1GiB",
			Help: "memory limit of each scratch container of a restore drill: room for the Redis dataset and PostgreSQL's restore"},
		{Key: "recovery_timeout", Value: settings.Duration(&b.RecoveryTimeout), Default: backup.DefaultRecoveryTimeout.String(),
			Help: "how long a point-in-time restore may replay WAL (1m to 24h); past it the previous data is put back"},
		{Key: "s3_endpoint", Value: settings.String(&b.S3Endpoint), Help: "S3-compatible server for backups, HOST:PORT without scheme"},
		{Key: "s3_access_key", Value: settings.String(&b.S3AccessKey), Flag: settings.NoFlag, Env: S3AccessKeyEnv, Alt: "s3_access_key_file",
			Secret: secretHint("key", "s3_access_key", S3AccessKeyEnv), Help: "S3 access key"},
		{Key: "s3_access_key_file", Value: settings.String(&b.S3AccessKeyFile), Path: true, Help: "file holding the S3 access key"},
		{Key: "s3_secret_key", Value: settings.String(&b.S3SecretKey), Flag: settings.NoFlag, Env: S3SecretKeyEnv, Alt: "s3_secret_key_file",
			Secret: secretHint("key", "s3_secret_key", S3SecretKeyEnv), Help: "S3 secret key"},
		{Key: "s3_secret_key_file", Value: settings.String(&b.S3SecretKeyFile), Path: true, Help: "file holding the S3 secret key"},
		{Key: "s3_tls", Value: settings.Bool(&b.S3TLS), Help: "talk https to the S3 server"},
		{Key: "s3_region", Value: settings.String(&b.S3Region), Help: "S3 region (default us-east-1)"},

		// Continuous WAL archiving.
		{Key: "wal_archive", Value: settings.Bool(&c.WAL.Archive), Default: "true",
			Help: "stream PostgreSQL's WAL to wal_archive_dir or wal_archive_bucket for point-in-time restore, once the control plane sends an archive key"},
		{Key: "wal_archive_dir", Value: settings.String(&c.WAL.Dir), Path: true,
			Help: "host directory for the WAL, inside backup_dirs (default: the first backup dir, unless wal_archive_bucket is set); files go to <dir>/wal/<node-id>/"},
		{Key: "wal_archive_bucket", Value: settings.String(&c.WAL.Bucket),
			Help: "S3 bucket for the WAL instead of wal_archive_dir, on the s3_endpoint server; objects go to <prefix>/wal/<node-id>/"},
		{Key: "wal_archive_prefix", Value: settings.String(&c.WAL.Prefix), Help: "key prefix in wal_archive_bucket, e.g. forlock"},
		{Key: "wal_ship_interval", Value: settings.Duration(&c.WAL.ShipInterval), Default: walarchive.DefaultShipInterval.String(),
			Help: "how often new WAL is looked for and complete segments are shipped"},
		{Key: "wal_partial_interval", Value: settings.Duration(&c.WAL.PartialInterval),
			Help: "how often at most the growing partial segment is shipped again, the RPO's main term (default: wal_ship_interval to a directory, " +
				DefaultS3PartialInterval.String() + " to S3, where each is a PUT request)"},
		{Key: "wal_slot", Value: settings.String(&c.WAL.Slot), Default: walarchive.DefaultSlot, Help: "PostgreSQL physical replication slot of the archive"},

		// The node's TLS certificate: cert_rotate tasks, the certificate check.
		{Key: "tls_addr", Value: settings.String(&tl.Addr),
			Help: "where nginx's 443 is reachable, HOST:PORT (default: the API URL's host:port if https, else 127.0.0.1:443)"},
		{Key: "tls_server_name", Value: settings.String(&tl.ServerName), Help: "SNI for the handshakes with nginx (default: the first of --tls-names)"},
		{Key: "tls_names", Value: settings.List(&tl.Names),
			Help: "names every installed certificate must cover (default: the names of the certificate the control plane sends)"},
		{Key: "nginx_cert_path", Value: settings.String(&tl.CertPath), Default: certs.DefaultCertPath, Help: "nginx's certificate file inside its container"},
		{Key: "nginx_key_path", Value: settings.String(&tl.KeyPath), Default: certs.DefaultKeyPath, Help: "nginx's key file inside its container"},
		{Key: "nginx_container", Value: settings.String(&tl.Container), Help: "nginx's container or compose service (default: the containers' nginx)"},

		// Upgrades: the image registry's credentials for pulls.
		{Key: "registry_username", Value: settings.String(&u.RegistryUsername), Help: "image registry user for upgrade pulls"},
		{Key: "registry_password", Value: settings.String(&u.RegistryPassword), Flag: settings.NoFlag, Env: registryPasswordEnv,
			Secret: secretHint("password", "registry_password", registryPasswordEnv), Help: "image registry password"},
		{Key: "registry_password_file", Value: settings.String(&u.RegistryPasswordFile), Path: true,
			Help: "file holding the image registry password; wins over " + registryPasswordEnv},
	}
	t.CheckFile = st.checkFile
	return t
}

// checkFile checks the settings as the config file left them, so that a
// mistake in the file is reported as the file's.
func (st *agentSettings) checkFile() error {
	h, err := st.cfg.Health.validate()
	if err != nil {
		return fmt.Errorf("health check settings: %w", err)
	}
	b, err := st.cfg.Backup.check(false)
	if err != nil {
		return fmt.Errorf("backup settings: %w", err)
	}
	if _, err := st.cfg.WAL.validate(b); err != nil {
		return err
	}
	if _, err := st.cfg.TLS.validate(h); err != nil {
		return fmt.Errorf("tls settings: %w", err)
	}
	return nil
}

// resolveSettings sets every setting from its flag, else its environment
// variable, else the config file, else its default.
func resolveSettings(flags *pflag.FlagSet, getenv func(string) string) (agentSettings, error) {
	var st agentSettings
	if err := st.table().Resolve(flags, getenv); err != nil {
		return agentSettings{}, err
	}
	return st, nil
}

// parseConfig parses a config file's content over the defaults.
func parseConfig(data []byte) (agentSettings, error) {
	var st agentSettings
	t := st.table()
	if err := t.Defaults(); err != nil {
		return st, err
	}
	err := t.Decode(data, "")
	return st, err
}
