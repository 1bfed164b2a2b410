package backup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/forlock/fleet/agent/internal/dbsource"
	"github.com/forlock/fleet/agent/internal/dockerrt"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// scratchDir is where a scratch server keeps everything, inside its own
// container's writable layer; it starts once <scratchDir>/go exists, so
// the data can be put in place first.
const scratchDir = "/tmp/forlock-drill"

// waitGo is the start of every scratch command: wait for the go file.
const waitGo = "set -e; d=" + scratchDir + "; mkdir -p $d; chmod 700 $d; while [ ! -e $d/go ]; do sleep 0.1; done; "

// scratchExec runs commands in a scratch container, for dbsource (which
// names a service: there is only one here).
type scratchExec struct{ s *dockerrt.Scratch }

func (e scratchExec) Exec(ctx context.Context, _, user string, cmd []string, stdin io.Reader, stdout io.Writer) (dockerrt.ExecResult, error) {
	return e.s.Exec(ctx, user, cmd, stdin, stdout)
}

// scratch starts a scratch container beside service running script after
// the go file, opens the artifact's plaintext, and returns both with what
// closes the one and removes the other.
func (c *core) scratch(ctx context.Context, it *item, service, user, script string) (*dockerrt.Scratch, io.Reader, func(), error) {
	s, err := c.cfg.Docker.StartScratch(ctx, dockerrt.ScratchConfig{Service: service, User: user,
		Cmd: []string{"sh", "-c", waitGo + script}, NanoCPUs: c.cfg.DrillNanoCPUs, MemoryBytes: c.cfg.DrillMemory})
	if err != nil {
		return nil, nil, nil, err
	}
	remove := func() {
		if err := s.Remove(ctx); err != nil {
			c.cfg.Logger.Error("drill: cannot remove a scratch container", "container", s.Name, "error", err.Error())
		}
	}
	body, err := it.openPlain(ctx)
	if err != nil {
		remove()
		return nil, nil, nil, fmt.Errorf("open: %w", err)
	}
	return s, body, func() { _ = body.Close(); remove() }, nil
}

// run runs cmd in s and fails with its stderr.
func run(ctx context.Context, s *dockerrt.Scratch, user, what string, stdin io.Reader, stdout io.Writer, cmd ...string) error {
	res, err := s.Exec(ctx, user, cmd, stdin, stdout)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return res.Err(what)
}

// waitReady runs probe until it succeeds, failing when the scratch
// container stops (its server exited) or the start timeout passes.
func (c *core) waitReady(ctx context.Context, s *dockerrt.Scratch, user, what string, probe ...string) error {
	deadline := time.Now().Add(c.cfg.DrillStartTimeout)
	for {
		res, err := s.Exec(ctx, user, probe, nil, io.Discard)
		if err == nil && res.ExitCode == 0 {
			return nil
		}
		if up, ierr := s.Running(ctx); ierr == nil && !up {
			return fmt.Errorf("%s exited before it accepted connections", what)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not accept connections within %s", what, c.cfg.DrillStartTimeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// drillPostgres restores a PostgreSQL artifact into a fresh cluster in a
// scratch container of the node's postgres image and compares row counts.
// Logical: initdb, pg_restore --no-owner --no-privileges in one transaction
// (the scratch cluster has none of the node's roles), every recorded table
// with exactly its recorded rows and no other table. Physical: the base
// backup's tar is the data directory; the server must recover to
// consistency from the WAL inside it, and every recorded table must be
// there (counts are shown, not compared: see baseBackup).
func (c *core) drillPostgres(ctx context.Context, it *item) ([]*forlockv1.DrillCount, error) {
	const sock = "--host=" + scratchDir
	server := `if [ ! -s $d/pg/PG_VERSION ]; then initdb --no-sync -D $d/pg -U postgres --auth-local=trust >$d/initdb.log 2>&1; fi; ` +
		// A scratch cluster is thrown away: no fsync (several times faster
		// on a loaded host), no archiving.
		`exec postgres -D $d/pg -c listen_addresses= -c unix_socket_directories=$d -c archive_mode=off -c fsync=off -c full_page_writes=off`
	s, body, done, err := c.scratch(ctx, it, "postgres", "postgres", server)
	if err != nil {
		return nil, err
	}
	defer done()
	if it.physical {
		if err := run(ctx, s, "postgres", "unpack the base backup", body, io.Discard,
			"sh", "-c", "mkdir -p "+scratchDir+"/pg && chmod 700 "+scratchDir+"/pg && tar -x -C "+scratchDir+"/pg"); err != nil {
			return nil, err
		}
	}
	if err := run(ctx, s, "postgres", "start the scratch server", nil, io.Discard, "sh", "-c", "mkdir -p "+scratchDir+" && touch "+scratchDir+"/go"); err != nil {
		return nil, err
	}
	if err := c.waitReady(ctx, s, "postgres", "the scratch PostgreSQL", "pg_isready", "-q", sock); err != nil {
		return nil, err
	}
	pg := dbsource.Postgres{Exec: scratchExec{s}, Host: scratchDir}
	if !it.physical {
		if err := run(ctx, s, "postgres", "create the database", nil, io.Discard,
			"psql", "-X", "-q", sock, "--dbname=postgres", "-c", "CREATE DATABASE forlock"); err != nil {
			return nil, err
		}
		if err := run(ctx, s, "postgres", "pg_restore", body, io.Discard, "pg_restore", sock, "--dbname=forlock",
			"--no-owner", "--no-privileges", "--single-transaction", "--exit-on-error", "--no-password"); err != nil {
			return nil, err
		}
	}
	got, err := pg.CountRows(ctx)
	if err != nil {
		return nil, err
	}
	return compareTables(it.art, got)
}

// compareTables compares recorded row counts with a scratch server's.
func compareTables(a *forlockv1.Artifact, got []dbsource.TableRows) ([]*forlockv1.DrillCount, error) {
	have := map[string]uint64{}
	for _, r := range got {
		have[r.Table] = r.Rows
	}
	physical := a.GetPostgresFormat() == forlockv1.PostgresFormat_POSTGRES_FORMAT_PHYSICAL
	var counts []*forlockv1.DrillCount
	var problems []string
	for _, want := range a.GetTableCounts() {
		n, ok := have[want.GetTable()]
		counts = append(counts, &forlockv1.DrillCount{Kind: forlockv1.ArtifactKind_ARTIFACT_KIND_POSTGRES, Name: want.GetTable(), Expected: want.GetRows(), Got: n})
		switch {
		case !ok:
			problems = append(problems, fmt.Sprintf("table %s is missing", want.GetTable()))
		case !physical && n != want.GetRows():
			problems = append(problems, fmt.Sprintf("table %s has %d rows, %d recorded", want.GetTable(), n, want.GetRows()))
		}
		delete(have, want.GetTable())
	}
	if !physical && a.GetCountsRecorded() {
		for _, t := range slices.Sorted(maps.Keys(have)) {
			problems = append(problems, fmt.Sprintf("table %s was not recorded at backup time", t))
		}
	}
	if !a.GetCountsRecorded() {
		problems = append(problems, "no row counts were recorded at backup time (an artifact older than drills): the dump restored, nothing to compare; take a new backup")
	}
	if len(problems) > 0 {
		return counts, errors.New(strings.Join(problems, "; "))
	}
	return counts, nil
}

// drillRedis loads the RDB into a scratch redis-server of the node's redis
// image and compares each database's key count with the one read from the
// RDB at backup time. The scratch server is a replica of a master it
// cannot reach (no network): a replica loads keys whose expiry has passed
// since the backup instead of dropping them, so the counts compare exactly.
func (c *core) drillRedis(ctx context.Context, it *item) ([]*forlockv1.DrillCount, error) {
	dbs := 16
	for _, k := range it.art.GetRedisKeys() {
		dbs = max(dbs, int(k.GetDb())+1)
	}
	server := "exec redis-server --port 0 --unixsocket $d/redis.sock --dir $d --dbfilename dump.rdb --save '' --appendonly no " +
		"--databases " + strconv.Itoa(dbs) + " --replicaof 127.0.0.1 1"
	s, body, done, err := c.scratch(ctx, it, "redis", "", server)
	if err != nil {
		return nil, err
	}
	defer done()
	if err := run(ctx, s, "", "copy the RDB into scratch", body, io.Discard,
		"sh", "-c", "mkdir -p "+scratchDir+" && cat > "+scratchDir+"/dump.rdb && touch "+scratchDir+"/go"); err != nil {
		return nil, err
	}
	sock := scratchDir + "/redis.sock"
	// PING answers LOADING until the RDB is loaded; redis-cli exits 0 on
	// an error reply, so the probe looks for PONG.
	if err := c.waitReady(ctx, s, "", "the scratch redis-server (loading the RDB)",
		"sh", "-c", "redis-cli -s "+sock+" PING | grep -qx PONG"); err != nil {
		return nil, err
	}
	var info bytes.Buffer
	if err := run(ctx, s, "", "redis INFO keyspace", nil, &info, "redis-cli", "-s", sock, "INFO", "keyspace"); err != nil {
		return nil, err
	}
	got := keyspace(info.String())
	var counts []*forlockv1.DrillCount
	var problems []string
	for _, want := range it.art.GetRedisKeys() {
		n := got[want.GetDb()]
		counts = append(counts, &forlockv1.DrillCount{Kind: forlockv1.ArtifactKind_ARTIFACT_KIND_REDIS, Name: fmt.Sprintf("db%d", want.GetDb()), Expected: want.GetKeys(), Got: n})
		if n != want.GetKeys() {
			problems = append(problems, fmt.Sprintf("db%d has %d keys, %d recorded", want.GetDb(), n, want.GetKeys()))
		}
		delete(got, want.GetDb())
	}
	for _, db := range slices.Sorted(maps.Keys(got)) {
		counts = append(counts, &forlockv1.DrillCount{Kind: forlockv1.ArtifactKind_ARTIFACT_KIND_REDIS, Name: fmt.Sprintf("db%d", db), Got: got[db]})
		problems = append(problems, fmt.Sprintf("db%d has %d keys, none recorded", db, got[db]))
	}
	if !it.art.GetCountsRecorded() {
		problems = append(problems, "no key counts were recorded at backup time: the RDB loaded, nothing to compare; take a new backup")
	}
	if len(problems) > 0 {
		return counts, errors.New(strings.Join(problems, "; "))
	}
	return counts, nil
}

// keyspace parses INFO keyspace: "db0:keys=12,expires=0,avg_ttl=0".
func keyspace(info string) map[uint32]uint64 {
	out := map[uint32]uint64{}
	for _, line := range strings.Split(info, "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
		dbs, isDB := strings.CutPrefix(name, "db")
		if !ok || !isDB {
			continue
		}
		db, err := strconv.ParseUint(dbs, 10, 32)
		if err != nil {
			continue
		}
		for _, kv := range strings.Split(rest, ",") {
			if v, ok := strings.CutPrefix(kv, "keys="); ok {
				if n, err := strconv.ParseUint(v, 10, 64); err == nil {
					out[uint32(db)] = n
				}
			}
		}
	}
	return out
}
