package backup

import (
	"context"
	"errors"
	"io"
	"maps"
	"slices"

	"github.com/forlock/fleet/agent/internal/dbsource"
	"github.com/forlock/fleet/agent/internal/rdb"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// recorded is what a backup records beside an artifact for its restore
// drills: the row count of every table (PostgreSQL) or the key count of
// every database (Redis); for a physical backup also where its WAL starts
// and ends, for point-in-time restore.
type recorded struct {
	tables []*forlockv1.TableCount
	redis  []*forlockv1.RedisKeyCount
	ok     bool
	base   dbsource.BasePosition
}

func tableCounts(rows []dbsource.TableRows) []*forlockv1.TableCount {
	out := make([]*forlockv1.TableCount, len(rows))
	for i, r := range rows {
		out[i] = &forlockv1.TableCount{Table: r.Table, Rows: r.Rows}
	}
	return out
}

// dumpPostgres dumps the database and records the row counts of its
// tables, counted in the dump's own snapshot.
func (c *core) dumpPostgres(ctx context.Context, w io.Writer, rec *recorded) error {
	rows, err := dbsource.Postgres{Exec: c.cfg.Docker}.DumpCounted(ctx, w)
	if err != nil {
		return err
	}
	rec.tables, rec.ok = tableCounts(rows), true
	return nil
}

// baseBackup takes a physical backup and records the row counts of the
// tables counted just before it started. They are not the counts of the
// backup's snapshot (a base backup has none until WAL replay ends at a
// point no session can name in advance): a drill checks that every table
// recorded is present, not the counts.
func (c *core) baseBackup(ctx context.Context, w io.Writer, rec *recorded) error {
	pg := dbsource.Postgres{Exec: c.cfg.Docker}
	rows, err := pg.CountRows(ctx)
	if err != nil {
		return err
	}
	if rec.base, err = pg.BaseBackupAt(ctx, w); err != nil {
		return err
	}
	rec.tables, rec.ok = tableCounts(rows), true
	return nil
}

// snapshotRedis streams a fresh RDB into w and records the key count of
// each database read from the RDB itself, as it passes. An RDB the parser
// cannot read (a module type) is still backed up, without counts: its
// drills check that it loads, and say there was nothing to compare.
func (c *core) snapshotRedis(ctx context.Context, w io.Writer, rec *recorded) error {
	client, err := c.redisClient()
	if err != nil {
		return err
	}
	defer func() { _ = client.Close() }()
	pr, pw := io.Pipe()
	type counted struct {
		s   rdb.Summary
		err error
	}
	res := make(chan counted, 1)
	go func() {
		s, err := rdb.Count(pr)
		_, _ = io.Copy(io.Discard, pr) // the CRC, or the rest after a parse error
		res <- counted{s, err}
	}()
	err = dbsource.Redis{Client: client, Exec: c.cfg.Docker}.Snapshot(ctx, io.MultiWriter(w, pw))
	pw.CloseWithError(err)
	got := <-res
	if err != nil {
		return err
	}
	if got.err != nil {
		if !errors.Is(got.err, rdb.ErrFormat) {
			return got.err
		}
		c.cfg.Logger.Warn("backup: cannot read the key counts of the RDB; its drills will only check that it loads", "error", got.err.Error())
		return nil
	}
	rec.redis, rec.ok = redisCounts(got.s), true
	return nil
}

// redisCounts orders a summary's counts by database.
func redisCounts(s rdb.Summary) []*forlockv1.RedisKeyCount {
	out := make([]*forlockv1.RedisKeyCount, 0, len(s.Keys))
	for _, db := range slices.Sorted(maps.Keys(s.Keys)) {
		out = append(out, &forlockv1.RedisKeyCount{Db: db, Keys: s.Keys[db]})
	}
	return out
}
