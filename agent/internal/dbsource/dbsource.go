// Package dbsource reads and writes the data of a Forlock node for backups
// and restores, as streams: PostgreSQL with pg_dump -Fc and pg_restore, or
// pg_basebackup, run inside the postgres container (no temporary file in the
// container), Redis
// with BGSAVE followed by a copy of the finished dump.rdb.
//
// The streams are the sources and sinks of the backup pipeline
// (internal/artifact: zstd, streaming AEAD, SHA-256); nothing here
// compresses or encrypts.
package dbsource

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/forlock/fleet/agent/internal/dockerrt"
)

// Execer runs a command in the container of a node service.
type Execer interface {
	Exec(ctx context.Context, service, user string, cmd []string, stdin io.Reader, stdout io.Writer) (dockerrt.ExecResult, error)
}

// Postgres is a node's PostgreSQL, reached through its container.
type Postgres struct {
	Exec Execer
	// Database to dump and restore; default "forlock".
	Database string
	// OSUser runs pg_dump and pg_restore in the container and is their
	// PostgreSQL role (peer authentication on the local socket); default
	// "postgres".
	OSUser string
	// Host is the socket directory psql connects through (a scratch
	// server's); empty: the server's default.
	Host string
}

func (p Postgres) db() string   { return cmpOr(p.Database, "forlock") }
func (p Postgres) user() string { return cmpOr(p.OSUser, "postgres") }

// Restore streams a custom-format dump from r into `pg_restore --clean
// --if-exists`, in one transaction, so a failed restore leaves the database
// as it was.
func (p Postgres) Restore(ctx context.Context, r io.Reader) error {
	res, err := p.Exec.Exec(ctx, "postgres", p.user(),
		[]string{"pg_restore", "--clean", "--if-exists", "--single-transaction", "--exit-on-error", "--no-password", "--dbname=" + p.db()}, r, io.Discard)
	if err != nil {
		return fmt.Errorf("pg_restore: %w", err)
	}
	return res.Err("pg_restore")
}

// BaseBackup streams a pg_basebackup of the whole cluster into w: one tar
// of the data directory with the write-ahead log the backup needs, fetched
// at its end, after a fast checkpoint. It needs a replication connection on
// the local socket (initdb's default pg_hba.conf allows the superuser one)
// and no tablespace outside the data directory.
func (p Postgres) BaseBackup(ctx context.Context, w io.Writer) error {
	res, err := p.Exec.Exec(ctx, "postgres", p.user(),
		[]string{"pg_basebackup", "--pgdata=-", "--format=tar", "--wal-method=fetch", "--checkpoint=fast", "--no-password"}, nil, w)
	if err != nil {
		return fmt.Errorf("pg_basebackup: %w", err)
	}
	return res.Err("pg_basebackup")
}

// Show returns the value of a server setting (SHOW name), e.g.
// data_directory or server_version_num.
func (p Postgres) Show(ctx context.Context, name string) (string, error) {
	return p.Query(ctx, "SHOW "+name)
}

// Query runs one SQL statement with psql and returns its output, unaligned
// and without headers, trimmed (e.g. "t" for a boolean).
func (p Postgres) Query(ctx context.Context, sql string) (string, error) {
	var out bytes.Buffer
	res, err := p.Exec.Exec(ctx, "postgres", p.user(),
		[]string{"psql", "-X", "-A", "-t", "-q", "--no-password", "--dbname=" + p.db(), "-c", sql}, nil, &out)
	if err != nil {
		return "", fmt.Errorf("psql %s: %w", sql, err)
	}
	if err := res.Err("psql " + sql); err != nil {
		return "", err
	}
	return strings.TrimSpace(out.String()), nil
}

func cmpOr(v, def string) string {
	if v == "" {
		return def
	}
	return v
}
