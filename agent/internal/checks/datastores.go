package checks

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
)

// Secret is a credential a check needs: read from File at every use (so a
// rotated secret is picked up without a restart) when File is set, else
// Value. Its text never appears in a result or a log.
type Secret struct {
	Value string
	File  string
}

// maxSecretSize bounds a secret file; a DSN is a few hundred bytes.
const maxSecretSize = 4096

// IsSet reports whether the secret has a source.
func (s Secret) IsSet() bool { return s.File != "" || s.Value != "" }

// Read returns the secret, surrounding white space removed.
func (s Secret) Read() (string, error) {
	if s.File == "" {
		return strings.TrimSpace(s.Value), nil
	}
	b, err := os.ReadFile(s.File)
	if err != nil {
		return "", err
	}
	if len(b) > maxSecretSize {
		return "", fmt.Errorf("%s is larger than %d bytes: is this the right file?", s.File, maxSecretSize)
	}
	v := strings.TrimSpace(string(b))
	if v == "" {
		return "", fmt.Errorf("%s is empty", s.File)
	}
	return v, nil
}

// Postgres checks that PostgreSQL accepts a connection and answers
// SELECT 1, and judges the connections in use against the pool
// (EvaluateDBConnections), both over the same one connection.
type Postgres struct {
	// DSN is the connection string, a URL or key=value pairs.
	DSN Secret
}

// Name is "postgres".
func (Postgres) Name() string { return "postgres" }

// Run connects, runs SELECT 1, reads the connections and disconnects, all
// within ctx.
func (p Postgres) Run(ctx context.Context) Result {
	r := Result{Name: p.Name(), Status: Unknown}
	if !p.DSN.IsSet() {
		r.Summary = "PostgreSQL is not configured: set postgres_dsn_file or FORLOCK_POSTGRES_DSN"
		return r
	}
	dsn, err := p.DSN.Read()
	if err != nil {
		r.Summary = fmt.Sprintf("cannot read the PostgreSQL DSN: %v", err)
		return r
	}
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		// The parser's message may quote the DSN, password and all.
		r.Summary = "the PostgreSQL DSN does not parse (not shown: it may hold a password): fix postgres_dsn_file or FORLOCK_POSTGRES_DSN"
		return r
	}
	if d, ok := ctx.Deadline(); ok {
		cfg.ConnectTimeout = time.Until(d)
	}
	cfg.RuntimeParams["application_name"] = "forlock-agent"
	where := fmt.Sprintf("database %s on %s:%d", cfg.Database, cfg.Host, cfg.Port)

	start := time.Now()
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		r.Status, r.Summary = Critical, "cannot connect: "+describeDBError(ctx, err)
		return r
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		_ = conn.Close(cctx)
	}()
	var one int
	if err := conn.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
		r.Status, r.Summary = Critical, fmt.Sprintf("connected to %s, but SELECT 1 failed: %s", where, describeDBError(ctx, err))
		return r
	}
	alive := fmt.Sprintf("SELECT 1 in %s (PostgreSQL %s, %s)", roundMS(time.Since(start)),
		conn.PgConn().ParameterStatus("server_version"), where)
	var inUse, maxConns, reserved int
	if err := conn.QueryRow(ctx, connectionsQuery).Scan(&inUse, &maxConns, &reserved); err != nil {
		r.Summary = fmt.Sprintf("%s, but cannot read the connections in use: %s", alive, describeDBError(ctx, err))
		return r
	}
	c := EvaluateDBConnections(inUse, maxConns, reserved)
	r.Status, r.Summary, r.Measurements = c.Status, alive+"; "+c.Summary, c.Measurements
	return r
}

// connectionsQuery reads the connections in use, max_connections and the
// slots reserved for superusers (superuser_reserved_connections, plus
// reserved_connections from PostgreSQL 16 on, for roles with
// pg_use_reserved_connections). What is left is the pool the stack's
// ordinary role draws from: its connections fail with "remaining
// connection slots are reserved" once it is used up.
//
// In use is the sum of pg_stat_database's numbackends, which every role
// may read. pg_stat_activity would single out client backends by
// backend_type, but hides that column from a role without
// pg_read_all_stats for other roles' sessions and the server's own
// processes, and the agent's role has no such grant (deploy/testnode's
// forlock role is a plain LOGIN role). numbackends counts the backends
// connected to a database: the client backends that max_connections
// limits, plus the few autovacuum and parallel workers, which have slots
// of their own; counting them errs on the side of warning early. The
// server's background processes and physical WAL senders (the agent's
// WAL archive among them), connected to no database, are not counted.
const connectionsQuery = `SELECT
	(SELECT coalesce(sum(numbackends), 0) FROM pg_stat_database)::int,
	current_setting('max_connections')::int,
	current_setting('superuser_reserved_connections')::int
		+ coalesce(current_setting('reserved_connections', true), '0')::int`

// Redis checks that Redis answers PING.
type Redis struct {
	// Addr is host:port.
	Addr string
	// Password is Redis's password (requirepass), if any.
	Password Secret
}

// Name is "redis".
func (Redis) Name() string { return "redis" }

// Run connects, sends PING and disconnects, all within ctx.
func (rc Redis) Run(ctx context.Context) Result {
	r := Result{Name: rc.Name(), Status: Unknown}
	if rc.Addr == "" {
		r.Summary = "Redis is not configured: set redis_addr (and redis_password_file or FORLOCK_REDIS_PASSWORD if it needs one)"
		return r
	}
	var pw string
	if rc.Password.IsSet() {
		var err error
		if pw, err = rc.Password.Read(); err != nil {
			r.Summary = fmt.Sprintf("cannot read the Redis password: %v", err)
			return r
		}
	}
	timeout := 3 * time.Second
	if d, ok := ctx.Deadline(); ok {
		timeout = time.Until(d)
	}
	quietRedis.Do(func() { redis.SetLogger(discardLogger{}) })
	c := redis.NewClient(&redis.Options{
		Addr: rc.Addr, Password: pw,
		Protocol:        2,                                   // plain AUTH + PING: works with any Redis version
		DisableIdentity: true,                                // no CLIENT SETINFO
		PoolSize:        1, MaxRetries: -1, DialerRetries: 1, // one attempt: the check reports, the next run retries
		DialTimeout: timeout, ReadTimeout: timeout, WriteTimeout: timeout,
	})
	defer func() { _ = c.Close() }()
	start := time.Now()
	pong, err := c.Ping(ctx).Result()
	if err != nil {
		r.Status, r.Summary = Critical, fmt.Sprintf("PING to %s failed: %s", rc.Addr, describeDBError(ctx, err))
		return r
	}
	r.Status, r.Summary = OK, fmt.Sprintf("%s in %s from %s", pong, roundMS(time.Since(start)), rc.Addr)
	return r
}

// quietRedis silences go-redis's package logger, which would otherwise
// print a plain-text line to stderr for every failed dial: the check
// reports the failure itself. It is the one process-wide setting the
// agent makes, once, and only when a Redis check runs.
var quietRedis sync.Once

type discardLogger struct{}

func (discardLogger) Printf(context.Context, string, ...any) {}

// describeDBError names a timeout as such; other errors keep their text
// (neither driver puts a password in one).
func describeDBError(ctx context.Context, err error) string {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return "no answer in time: " + err.Error()
	}
	return err.Error()
}
