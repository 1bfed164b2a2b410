// Command forlockapi is a stand-in for the Forlock API, for test nodes: the
// guide's health endpoints, a table of vault items in PostgreSQL, sessions in
// Redis, a loader of realistic data and switches to make it fail on purpose.
//
//	forlockapi [serve]        serve HTTP (LISTEN_ADDR, default :8080)
//	forlockapi load --mb N    insert N MB of vault items and matching sessions
//	forlockapi summary        print the vault's row count and checksum
//	forlockapi healthcheck    exit 0 when /api/v1/health answers 200 (for Docker)
//
// Configuration comes from the environment: DATABASE_URL, REDIS_ADDR,
// REDIS_PASSWORD, LISTEN_ADDR, LOG_LEVEL, FORLOCK_FAULT_FILE (default
// /tmp/forlock-fail: while it exists /api/v1/health answers 500) and
// FORLOCK_DELAY_FILE (default /tmp/forlock-delay: a duration such as "800ms"
// added to every /api/v1/health answer) and FORLOCK_API_USERS (the accounts
// of POST /api/v1/auth/login, "email:password,..."; default DefaultUsers). Two switches are baked into images
// for the upgrade tests: FORLOCK_API_VERSION is reported by /api/v1/health,
// and FORLOCK_API_BROKEN=1 makes every health endpoint answer 503, so the
// image's Docker healthcheck (`forlockapi healthcheck`) fails.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"syscall"
	"time"
)

// version is set at build time with -ldflags -X main.version=...
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "forlockapi:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg := configFromEnv(os.Getenv)
	cmd := "serve"
	if len(args) > 0 {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		fs := flag.NewFlagSet("serve", flag.ContinueOnError)
		fs.SetOutput(stderr)
		fs.StringVar(&cfg.ListenAddr, "addr", cfg.ListenAddr, "listen address")
		if err := fs.Parse(args); err != nil {
			return err
		}
		return serve(ctx, cfg, newLogger(stdout, cfg.LogLevel))
	case "load":
		fs := flag.NewFlagSet("load", flag.ContinueOnError)
		fs.SetOutput(stderr)
		mb := fs.Int("mb", 1, "megabytes of vault item payload to insert")
		owners := fs.Int("owners", 50, "number of distinct owners")
		seed := fs.Uint64("seed", uint64(time.Now().UnixNano()), "random seed")
		if err := fs.Parse(args); err != nil {
			return err
		}
		if *mb < 0 || *owners < 1 {
			return errors.New("load: --mb must be >= 0 and --owners >= 1")
		}
		return load(ctx, cfg, newLogger(stderr, cfg.LogLevel), stdout, LoadOptions{MB: *mb, Owners: *owners, Seed: *seed})
	case "summary":
		return summary(ctx, cfg, stdout)
	case "healthcheck":
		return healthcheck(ctx, cfg.ListenAddr)
	case "version":
		_, err := fmt.Fprintln(stdout, version)
		return err
	default:
		return fmt.Errorf("unknown command %q (serve, load, summary, healthcheck, version)", cmd)
	}
}

// Config is what the server and its subcommands read from the environment.
type Config struct {
	ListenAddr    string
	DatabaseURL   string
	RedisAddr     string
	RedisPassword string
	LogLevel      slog.Level
	FaultFile     string
	DelayFile     string
	// Release is FORLOCK_API_VERSION, shown by /api/v1/health.
	Release string
	// Broken is FORLOCK_API_BROKEN set (not "0" or "false"): every health
	// endpoint answers 503.
	Broken bool
	// Users is FORLOCK_API_USERS, the login endpoint's accounts.
	Users string
}

func configFromEnv(getenv func(string) string) Config {
	get := func(k, def string) string {
		if v := getenv(k); v != "" {
			return v
		}
		return def
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(get("LOG_LEVEL", "info"))); err != nil {
		lvl = slog.LevelInfo
	}
	return Config{
		ListenAddr:    get("LISTEN_ADDR", ":8080"),
		DatabaseURL:   get("DATABASE_URL", "postgres://forlock@postgres:5432/forlock?sslmode=disable"),
		RedisAddr:     get("REDIS_ADDR", "redis:6379"),
		RedisPassword: getenv("REDIS_PASSWORD"),
		LogLevel:      lvl,
		FaultFile:     get("FORLOCK_FAULT_FILE", "/tmp/forlock-fail"),
		DelayFile:     get("FORLOCK_DELAY_FILE", "/tmp/forlock-delay"),
		Release:       getenv("FORLOCK_API_VERSION"),
		Broken:        !slices.Contains([]string{"", "0", "false"}, getenv("FORLOCK_API_BROKEN")),
		Users:         get("FORLOCK_API_USERS", DefaultUsers),
	}
}

func newLogger(w io.Writer, lvl slog.Level) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: lvl})).With("service", "forlock-api")
}

func serve(ctx context.Context, cfg Config, log *slog.Logger) error {
	store, err := OpenStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer store.Close()

	srv := NewServer(log, store, cfg.FaultFile, cfg.DelayFile)
	srv.release, srv.broken = cfg.Release, cfg.Broken
	if srv.users, err = ParseUsers(cfg.Users); err != nil {
		return err
	}
	go srv.EnsureSchemaLoop(ctx)

	hs := &http.Server{
		Addr:              cfg.ListenAddr,
		Handler:           srv.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
	}
	lis, err := net.Listen("tcp", cfg.ListenAddr)
	if err != nil {
		return err
	}
	log.Info("listening", "addr", lis.Addr().String(), "version", version, "release", cfg.Release, "broken", cfg.Broken)
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(lis) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		return err
	}
	log.Info("stopped")
	return nil
}

func load(ctx context.Context, cfg Config, log *slog.Logger, out io.Writer, opts LoadOptions) error {
	store, err := OpenStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer store.Close()
	if err := store.EnsureSchema(ctx); err != nil {
		return err
	}
	res, err := store.Load(ctx, log, opts)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(res)
}

func summary(ctx context.Context, cfg Config, out io.Writer) error {
	store, err := OpenStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer store.Close()
	s, err := store.Summary(ctx)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(s)
}

// healthcheck asks the local server's /api/v1/health, for Docker's HEALTHCHECK.
func healthcheck(ctx context.Context, listenAddr string) error {
	_, port, err := net.SplitHostPort(listenAddr)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+net.JoinHostPort("127.0.0.1", port)+"/api/v1/health", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("health: %s", resp.Status)
	}
	return nil
}
