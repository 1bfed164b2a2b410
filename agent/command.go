package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/forlock/fleet/agent/internal/certs"
	"github.com/forlock/fleet/internal/buildinfo"
	"github.com/forlock/fleet/internal/protocol"
)

// Exit codes of Main.
const (
	exitOK      = 0
	exitFailure = 1 // the agent ran and failed
	exitUsage   = 2 // bad flags or configuration: nothing was started
)

// JoinTokenEnv is the environment variable that may hold the join token.
const JoinTokenEnv = "FORLOCK_JOIN_TOKEN"

// Main runs forlock-agent with the command-line arguments args (without the
// program name) until SIGINT or SIGTERM, and returns the process exit code.
func Main(args []string) int { return MainWithHandlers(args, nil) }

// MainWithHandlers is Main with extra task handlers (see
// Config.TaskHandlers), for test binaries that wrap the real agent.
func MainWithHandlers(args []string, handlers map[protocol.Kind]TaskHandler) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return run(ctx, args, os.Stdout, os.Stderr, os.Getenv, handlers)
}

// settings is everything flags, environment and config file decide.
type settings struct {
	cfg       Config
	logLevel  slog.Level
	logFormat string
}

type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func usageError(err error) error { return &exitError{exitUsage, err} }

func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string, handlers map[protocol.Kind]TaskHandler) int {
	cmd := &cobra.Command{
		Use:   "forlock-agent",
		Short: "The Forlock Fleet agent: enrolls this host and keeps its control stream to the control plane",
		Long: `forlock-agent runs on every Forlock host. With no identity in its state directory it
enrolls with a join token (--join-token-file, ` + JoinTokenEnv + ` or --join-token),
then keeps a mutually authenticated control stream to the control plane, sends heartbeats,
and renews its certificate before it expires.

Every heartbeat carries the node's health checks (disk, memory, the Forlock containers,
the API's health endpoints, PostgreSQL, Redis), run in the background; a check whose
target is not configured reports UNKNOWN and says what to set. Secrets come from files
(--postgres-dsn-file, --redis-password-file, --s3-access-key-file, --s3-secret-key-file) or
` + PostgresDSNEnv + `, ` + RedisPasswordEnv + `, ` + S3AccessKeyEnv + ` and ` + S3SecretKeyEnv + `.

Backup and restore tasks write to host directories inside --backup-dirs or to a bucket on
--s3-endpoint, and archive --compose-dir and nginx's /etc/nginx in config backups.

Settings come from flags, then the environment, then the --config file, then defaults.`,
		Version: buildinfo.Version(),
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageError(fmt.Errorf("unexpected argument %q: forlock-agent takes flags only", args[0]))
			}
			return nil
		},
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := resolveSettings(cmd.Flags(), getenv)
			if err != nil {
				return usageError(err)
			}
			st.cfg.Logger = newLogger(stderr, st.logLevel, st.logFormat)
			st.cfg.TaskHandlers = handlers
			a, err := New(st.cfg)
			if err != nil {
				return usageError(err)
			}
			return a.Run(cmd.Context())
		},
	}
	cmd.SetArgs(args)
	cmd.SetOut(stdout)
	cmd.SetErr(stderr)
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError(err) })
	bindFlags(cmd.Flags())

	err := cmd.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	fmt.Fprintf(stderr, "forlock-agent: %v\n", err)
	if ee := (*exitError)(nil); errors.As(err, &ee) {
		return ee.code
	}
	return exitFailure
}

func bindFlags(f *pflag.FlagSet) {
	f.String("config", "", "YAML config file (version: 1)")
	f.String("control-plane", "", "control plane address, HOST:PORT")
	f.String("ca-file", "", "PEM fleet CA bundle that verifies the control plane when enrolling")
	f.String("join-token", "", "join token (visible in the process list: prefer "+JoinTokenEnv+" or --join-token-file)")
	f.String("join-token-file", "", "file holding a join token, read again at every enrollment attempt")
	f.String("state-dir", "", "directory for the node identity (default "+DefaultStateDir+")")
	f.String("name", "", "node name (default: the host name, lower-cased)")
	f.String("log-level", "", "debug, info, warn or error (default info)")
	f.String("log-format", "", "json or text (default json)")
	f.String("docker-host", "", "Docker Engine address (default DOCKER_HOST, else unix:///var/run/docker.sock)")
	f.StringSlice("containers", nil, "expected containers, by container or compose service name (default forlock-api,forlock-postgres,forlock-redis,forlock-nginx)")
	f.String("compose-project", "", "find the containers by this compose project label instead of by name")
	f.String("api-url", "", "base URL of the Forlock API for the /api/v1/health checks (default "+DefaultAPIURL+")")
	f.String("api-ca-file", "", "PEM CA bundle that verifies the API's certificate (default: the system roots)")
	f.String("api-server-name", "", "name to verify the API's certificate against, if not the URL's host")
	f.Bool("api-insecure-skip-verify", false, "accept any certificate from the API")
	f.String("postgres-dsn-file", "", "file holding the PostgreSQL DSN for the connectivity check (or "+PostgresDSNEnv+")")
	f.String("redis-addr", "", "Redis HOST:PORT for the connectivity check")
	f.String("redis-password-file", "", "file holding the Redis password (or "+RedisPasswordEnv+")")
	f.Duration("check-timeout", 0, "timeout of each health check (default 4s)")
	f.String("compose-dir", "", "the node's compose directory, archived by config backups (default /opt/forlock)")
	f.StringSlice("backup-dirs", nil, "host directories backups may be written to and restored from; the first is the default (default /var/backups/forlock)")
	f.String("s3-endpoint", "", "S3-compatible server for backups, HOST:PORT without scheme")
	f.String("s3-access-key-file", "", "file holding the S3 access key (or "+S3AccessKeyEnv+")")
	f.String("s3-secret-key-file", "", "file holding the S3 secret key (or "+S3SecretKeyEnv+")")
	f.Bool("s3-tls", false, "talk https to the S3 server")
	f.String("s3-region", "", "S3 region (default us-east-1)")
	f.String("registry-username", "", "image registry user for upgrade pulls (password in --registry-password-file or FORLOCK_REGISTRY_PASSWORD)")
	f.String("registry-password-file", "", "file holding the image registry password")
	f.String("tls-addr", "", "where nginx's 443 is reachable, HOST:PORT (default: the API URL's host:port if https, else 127.0.0.1:443)")
	f.String("tls-server-name", "", "SNI for the handshakes with nginx (default: the first of --tls-names)")
	f.StringSlice("tls-names", nil, "names every installed certificate must cover (default: the names of the certificate the control plane sends)")
	f.String("nginx-cert-path", "", "nginx's certificate file inside its container (default "+certs.DefaultCertPath+")")
	f.String("nginx-key-path", "", "nginx's key file inside its container (default "+certs.DefaultKeyPath+")")
	f.String("nginx-container", "", "nginx's container or compose service (default: the containers' nginx)")
}

// resolveSettings merges, per setting, the flag if given, else the
// environment (for the join token), else the config file, else the
// default.
func resolveSettings(flags *pflag.FlagSet, getenv func(string) string) (settings, error) {
	var fc fileConfig
	if path, _ := flags.GetString("config"); path != "" {
		var err error
		if fc, err = loadConfigFile(path); err != nil {
			return settings{}, err
		}
	}
	pick := func(flag, otherwise string) string {
		if flags.Changed(flag) {
			return flags.Lookup(flag).Value.String()
		}
		return otherwise
	}
	st := settings{cfg: Config{
		ControlPlane:  pick("control-plane", fc.ControlPlane),
		CAFile:        pick("ca-file", fc.CAFile),
		JoinToken:     pick("join-token", getenv(JoinTokenEnv)),
		JoinTokenFile: pick("join-token-file", fc.JoinTokenFile),
		StateDir:      pick("state-dir", fc.StateDir),
		Name:          pick("name", fc.Name),
	}}
	h := fc.health()
	h.DockerHost = pick("docker-host", h.DockerHost)
	if flags.Changed("containers") {
		h.Containers, _ = flags.GetStringSlice("containers")
	}
	h.ComposeProject = pick("compose-project", h.ComposeProject)
	h.APIURL = pick("api-url", h.APIURL)
	h.APICAFile = pick("api-ca-file", h.APICAFile)
	h.APIServerName = pick("api-server-name", h.APIServerName)
	if flags.Changed("api-insecure-skip-verify") {
		h.APIInsecureSkipVerify, _ = flags.GetBool("api-insecure-skip-verify")
	}
	// A secret's file flag beats its environment variable, which beats the
	// config file's file setting.
	if h.PostgresDSN = getenv(PostgresDSNEnv); h.PostgresDSN != "" {
		h.PostgresDSNFile = ""
	}
	h.PostgresDSNFile = pick("postgres-dsn-file", h.PostgresDSNFile)
	h.RedisAddr = pick("redis-addr", h.RedisAddr)
	if h.RedisPassword = getenv(RedisPasswordEnv); h.RedisPassword != "" {
		h.RedisPasswordFile = ""
	}
	h.RedisPasswordFile = pick("redis-password-file", h.RedisPasswordFile)
	if flags.Changed("check-timeout") {
		h.CheckTimeout, _ = flags.GetDuration("check-timeout")
	}
	st.cfg.Health = h
	b := fc.backup()
	b.ComposeDir = pick("compose-dir", b.ComposeDir)
	if flags.Changed("backup-dirs") {
		b.BackupDirs, _ = flags.GetStringSlice("backup-dirs")
	}
	b.S3Endpoint = pick("s3-endpoint", b.S3Endpoint)
	if b.S3AccessKey = getenv(S3AccessKeyEnv); b.S3AccessKey != "" {
		b.S3AccessKeyFile = ""
	}
	b.S3AccessKeyFile = pick("s3-access-key-file", b.S3AccessKeyFile)
	if b.S3SecretKey = getenv(S3SecretKeyEnv); b.S3SecretKey != "" {
		b.S3SecretKeyFile = ""
	}
	b.S3SecretKeyFile = pick("s3-secret-key-file", b.S3SecretKeyFile)
	if flags.Changed("s3-tls") {
		b.S3TLS, _ = flags.GetBool("s3-tls")
	}
	b.S3Region = pick("s3-region", b.S3Region)
	st.cfg.Backup = b
	st.cfg.Upgrade = UpgradeConfig{RegistryUsername: pick("registry-username", fc.RegistryUsername),
		RegistryPasswordFile: pick("registry-password-file", fc.RegistryPasswordFile), RegistryPassword: getenv("FORLOCK_REGISTRY_PASSWORD")}
	tc := fc.tls()
	tc.Addr = pick("tls-addr", tc.Addr)
	tc.ServerName = pick("tls-server-name", tc.ServerName)
	if flags.Changed("tls-names") {
		tc.Names, _ = flags.GetStringSlice("tls-names")
	}
	tc.CertPath = pick("nginx-cert-path", tc.CertPath)
	tc.KeyPath = pick("nginx-key-path", tc.KeyPath)
	tc.Container = pick("nginx-container", tc.Container)
	st.cfg.TLS = tc
	level := pick("log-level", fc.LogLevel)
	if level == "" {
		level = "info"
	}
	var err error
	if st.logLevel, err = parseLogLevel(level); err != nil {
		return settings{}, fmt.Errorf("--log-level: %w", err)
	}
	st.logFormat = pick("log-format", fc.LogFormat)
	if st.logFormat == "" {
		st.logFormat = "json"
	}
	if err := checkLogFormat(st.logFormat); err != nil {
		return settings{}, fmt.Errorf("--log-format: %w", err)
	}
	return st, nil
}

func newLogger(w io.Writer, level slog.Level, format string) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}
