package controlplane

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/forlock/fleet/internal/buildinfo"
)

// Main runs forlock-controlplane with command-line args (without the program
// name) and returns the process exit code. Precedence: flags, then FORLOCK_*
// environment variables, then the config file, then defaults.
func Main(args []string, stderr io.Writer) int {
	cfg, err := parseArgs(args, os.LookupEnv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "forlock-controlplane: %v\n", err)
		return 2
	}
	if cfg == nil { // --version
		return 0
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	s, err := New(*cfg)
	if err != nil {
		cfg.Logger.Error("start-up failed", "err", err)
		fmt.Fprintf(stderr, "forlock-controlplane: %v\n", err)
		return 1
	}
	if err := s.Run(ctx); err != nil {
		fmt.Fprintf(stderr, "forlock-controlplane: %v\n", err)
		return 1
	}
	return 0
}

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, strings.Split(v, ",")...); return nil }

func parseArgs(args []string, env func(string) (string, bool), stderr io.Writer) (*Config, error) {
	fs := flag.NewFlagSet("forlock-controlplane", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		configFile  = fs.String("config", "", "YAML config file (env FORLOCK_CONTROLPLANE_CONFIG)")
		dataDir     = fs.String("data-dir", "", "data directory (env FORLOCK_DATA_DIR; default "+DefaultDataDir+")")
		listen      = fs.String("listen", "", "gRPC listen address (env FORLOCK_LISTEN; default "+DefaultListen+")")
		heartbeat   = fs.Duration("heartbeat-interval", 0, "heartbeat interval agents use (default 10s)")
		certTTL     = fs.Duration("agent-cert-ttl", 0, "lifetime of agent certificates (default 24h)")
		certGrace   = fs.Duration("agent-cert-grace", 0, "how long an agent's previous certificate stays valid after a renewal (default 5m, at most 10m)")
		logLevel    = fs.String("log-level", "", "debug, info, warn or error (default info)")
		logFormat   = fs.String("log-format", "", "json or text (default json)")
		rotate      = fs.Bool("rotate-admin-token", false, "make a new admin token and rewrite <data-dir>/forlockctl.yaml")
		version     = fs.Bool("version", false, "print the version and exit")
		advertise   listFlag
		lim         Limits
		diskReserve = fs.String("disk-reserve", "", "free space the data dir keeps; below it writes are refused, e.g. 64MiB, 0 for none (default 64MiB)")
	)
	fs.IntVar(&lim.AuthFailures, "auth-failures", 0, "failed authentications an address may make per --auth-failure-window before it is blocked (default 20)")
	fs.DurationVar(&lim.AuthFailureWindow, "auth-failure-window", 0, "period of --auth-failures (default 1m)")
	fs.DurationVar(&lim.AuthBlock, "auth-block", 0, "how long an address over --auth-failures gets ResourceExhausted for wrong credentials (default 1m)")
	fs.IntVar(&lim.TrackedAddresses, "tracked-addresses", 0, "addresses whose failed authentications are remembered; the least recently seen is forgotten (default 16384)")
	fs.IntVar(&lim.UnauthConnsPerAddress, "unauth-conns-per-address", 0, "open connections per address without a client certificate or a valid token (default 32)")
	fs.DurationVar(&lim.HandshakeTimeout, "handshake-timeout", 0, "time a new connection has for its TLS handshake and HTTP/2 preface (default 10s)")
	fs.DurationVar(&lim.IdleConnTimeout, "idle-conn-timeout", 0, "close connections with no call in progress for this long (default 2m)")
	fs.IntVar(&lim.MaxHeaderBytes, "max-header-bytes", 0, "largest request metadata accepted, in bytes (default 65536)")
	fs.DurationVar(&lim.ProgressEventInterval, "progress-event-interval", 0, "least time between two stored progress events of a task (default 1s)")
	fs.IntVar(&lim.ProgressMessageMax, "progress-message-max", 0, "longest stored progress message in bytes (default 512)")
	fs.IntVar(&lim.JobEventsMax, "job-events-max", 0, "job event cap before progress events are sampled, plus --job-events-per-task per task (default 1000)")
	fs.IntVar(&lim.JobEventsPerTask, "job-events-per-task", 0, "job event cap added per task (default 20)")
	fs.IntVar(&lim.JobEventsSampleEvery, "job-events-sample-every", 0, "past the cap, store one progress event in this many (default 100)")
	fs.Float64Var(&lim.AgentControlRate, "agent-control-rate", 0, "heartbeats, pings and pongs a second per agent stream (default max(10, 5 per heartbeat interval))")
	fs.IntVar(&lim.AgentControlBurst, "agent-control-burst", 0, "burst of those (default twice the rate, at least 20)")
	fs.Var(&advertise, "advertise-name", "DNS name or IP agents use to reach this control plane; repeatable (env FORLOCK_ADVERTISE_NAMES, comma-separated)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q: see --help", fs.Arg(0))
	}
	if *version {
		fmt.Fprintln(stderr, "forlock-controlplane", buildinfo.Version())
		return nil, nil
	}
	fc := &FileConfig{}
	if path := firstOf(*configFile, envOr(env, "FORLOCK_CONTROLPLANE_CONFIG")); path != "" {
		var err error
		if fc, err = LoadConfigFile(path); err != nil {
			return nil, err
		}
	}
	cfg := &Config{
		DataDir:          firstOf(*dataDir, envOr(env, "FORLOCK_DATA_DIR"), fc.DataDir),
		Listen:           firstOf(*listen, envOr(env, "FORLOCK_LISTEN"), fc.Listen),
		AdvertiseNames:   advertise,
		RotateAdminToken: *rotate,
	}
	if len(cfg.AdvertiseNames) == 0 {
		if v := envOr(env, "FORLOCK_ADVERTISE_NAMES"); v != "" {
			cfg.AdvertiseNames = strings.Split(v, ",")
		} else {
			cfg.AdvertiseNames = fc.AdvertiseNames
		}
	}
	cfg.HeartbeatInterval = firstDuration(*heartbeat, fc.HeartbeatInterval)
	cfg.AgentCertTTL = firstDuration(*certTTL, fc.AgentCertTTL)
	cfg.AgentCertGrace = firstDuration(*certGrace, fc.AgentCertGrace)
	var err error
	if cfg.Vault, err = fc.Vault.vaultConfig(); err != nil {
		return nil, err
	}
	cfg.BackupKeys = fc.BackupKeys
	if cfg.BackupSchedules, err = fc.backupSchedules(); err != nil {
		return nil, err
	}
	fileLim, err := fc.Limits.limits()
	if err != nil {
		return nil, fmt.Errorf("config file: %w", err)
	}
	if lim.DiskReserve, err = parseReserve(*diskReserve); err != nil {
		return nil, err
	}
	cfg.Limits = fileLim.override(lim)
	cfg.Certs = CertsConfig{Domain: fc.Certs.Domain, ExtraNames: fc.Certs.ExtraNames, KVPath: fc.Certs.KVPath,
		TTL: firstDuration(0, fc.Certs.TTL)}
	logger, err := newLogger(firstOf(*logLevel, fc.LogLevel), firstOf(*logFormat, fc.LogFormat), stderr)
	if err != nil {
		return nil, err
	}
	cfg.Logger = logger
	cfg.setDefaults()
	return cfg, cfg.validate()
}

func newLogger(level, format string, w io.Writer) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(firstOf(level, "info"))); err != nil {
		return nil, fmt.Errorf("log level %q: use debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "", "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("log format %q: use json or text", format)
}

func envOr(env func(string) (string, bool), key string) string {
	v, _ := env(key)
	return v
}

func firstOf(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

// firstDuration returns flag if set, else the file's value (validated by
// ParseConfigFile), else zero for the default.
func firstDuration(flagVal time.Duration, fileVal string) time.Duration {
	if flagVal != 0 {
		return flagVal
	}
	d, _ := time.ParseDuration(fileVal)
	return d
}
