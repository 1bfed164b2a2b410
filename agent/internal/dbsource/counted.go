package dbsource

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/forlock/fleet/agent/internal/dockerrt"
)

// TableRows is the row count of one table.
type TableRows struct {
	// Table is schema-qualified, e.g. "public.vault_items".
	Table string `json:"t"`
	Rows  uint64 `json:"n"`
}

// countSQL counts the rows of every ordinary table outside the system
// schemas, as one JSON array on one record: query_to_xml runs each count
// inside the calling transaction, so under REPEATABLE READ every count sees
// the transaction's one snapshot.
const countSQL = `SELECT coalesce(json_agg(json_build_object('t', t, 'n', n) ORDER BY t), '[]') FROM (
  SELECT n.nspname || '.' || c.relname AS t,
    (xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM %I.%I', n.nspname, c.relname), false, true, '')))[1]::text::bigint AS n
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
    AND n.nspname NOT LIKE 'pg_temp%') s;`

// errSessionEnded is what a write to a psql session that has ended gets.
var errSessionEnded = errors.New("the psql session ended")

// DumpCounted streams `pg_dump -Fc` of the database into w (pg_dump's own
// compression off, -Z0: the pipeline compresses with zstd, faster),
// and returns the row count of every table counted in the dump's own
// snapshot: a psql session opens a REPEATABLE READ transaction, exports its
// snapshot, and stays open while pg_dump --snapshot runs in it and the
// session counts; the session commits (it wrote nothing) after pg_dump
// ended. The counts are what a restore of this dump must hold.
func (p Postgres) DumpCounted(ctx context.Context, w io.Writer) ([]TableRows, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	type done struct {
		res dockerrt.ExecResult
		err error
	}
	session := make(chan done, 1)
	go func() {
		// -0: records end in NUL, so the JSON (which may hold newlines,
		// never NUL) is one record.
		res, err := p.Exec.Exec(ctx, "postgres", p.user(),
			[]string{"psql", "-X", "-A", "-t", "-q", "-0", "-v", "ON_ERROR_STOP=1", "--no-password", "--dbname=" + p.db()}, inR, outW)
		outW.CloseWithError(io.EOF)
		// A session that never started (the container is stopped) reads
		// nothing: a write to it must fail, not wait for ever.
		_ = inR.CloseWithError(errSessionEnded)
		session <- done{res, err}
	}()
	sessionErr := func(err error) error {
		cancel()
		_ = inW.Close()
		d := <-session
		if d.err != nil {
			return fmt.Errorf("psql session: %w", d.err)
		}
		if e := d.res.Err("psql session"); e != nil {
			return e
		}
		return err
	}
	out := bufio.NewReader(outR)
	go func() { <-ctx.Done(); _ = outR.Close() }()
	if _, err := io.WriteString(inW, "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY;\nSELECT pg_export_snapshot();\n"); err != nil {
		return nil, sessionErr(fmt.Errorf("psql session: %w", err))
	}
	snap, err := out.ReadString(0)
	if err != nil {
		return nil, sessionErr(fmt.Errorf("psql session: no snapshot: %w", err))
	}
	snap = strings.TrimSpace(strings.TrimSuffix(snap, "\x00"))
	if snap == "" || strings.ContainsAny(snap, " '\"\\") {
		return nil, sessionErr(fmt.Errorf("psql session: unexpected snapshot ID %q", snap))
	}

	dumped := make(chan error, 1)
	go func() {
		res, err := p.Exec.Exec(ctx, "postgres", p.user(),
			[]string{"pg_dump", "--format=custom", "--compress=0", "--no-password", "--snapshot=" + snap, "--dbname=" + p.db()}, nil, w)
		if err == nil {
			err = res.Err("pg_dump")
		} else {
			err = fmt.Errorf("pg_dump: %w", err)
		}
		dumped <- err
	}()
	var counts []TableRows
	countErr := func() error {
		if _, err := io.WriteString(inW, countSQL+"\n"); err != nil {
			return fmt.Errorf("psql session: %w", err)
		}
		rec, err := out.ReadString(0)
		if err != nil {
			return fmt.Errorf("psql session: no counts: %w", err)
		}
		if err := json.Unmarshal([]byte(strings.TrimSuffix(rec, "\x00")), &counts); err != nil {
			return fmt.Errorf("psql session: counts: %w", err)
		}
		return nil
	}()
	if countErr != nil {
		cancel()
	}
	dumpErr := <-dumped
	if err := errors.Join(countErr, dumpErr); err != nil {
		return nil, sessionErr(err)
	}
	if _, err := io.WriteString(inW, "COMMIT;\n"); err != nil {
		return nil, sessionErr(fmt.Errorf("psql session: %w", err))
	}
	_ = inW.Close()
	_, _ = io.Copy(io.Discard, out)
	d := <-session
	if d.err != nil {
		return nil, fmt.Errorf("psql session: %w", d.err)
	}
	if err := d.res.Err("psql session"); err != nil {
		return nil, err
	}
	return counts, nil
}

// CountRows returns the row count of every table of the database now (one
// REPEATABLE READ transaction): for a scratch server after a restore, or
// beside a physical backup.
func (p Postgres) CountRows(ctx context.Context) ([]TableRows, error) {
	var out strings.Builder
	res, err := p.Exec.Exec(ctx, "postgres", p.user(),
		append(p.hostArgs("psql", "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "--no-password", "--dbname="+p.db()),
			"-c", "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY", "-c", countSQL, "-c", "COMMIT"), nil, &out)
	if err != nil {
		return nil, fmt.Errorf("psql count rows: %w", err)
	}
	if err := res.Err("psql count rows"); err != nil {
		return nil, err
	}
	var counts []TableRows
	if err := json.Unmarshal([]byte(out.String()), &counts); err != nil {
		return nil, fmt.Errorf("psql count rows: %w", err)
	}
	return counts, nil
}

// hostArgs is a command with --host when p names a socket directory.
func (p Postgres) hostArgs(cmd ...string) []string {
	if p.Host != "" {
		cmd = append(cmd, "--host="+p.Host)
	}
	return cmd
}
