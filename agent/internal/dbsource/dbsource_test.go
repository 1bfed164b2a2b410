package dbsource

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/forlock/fleet/agent/internal/dockerrt"

	"github.com/forlock/fleet/test/testenv"
)

// node brings up a real Forlock test node (deploy/testnode) and returns a
// runtime for its containers and its Redis address on loopback. Without the
// images the test fails naming the command that builds them.
func node(t *testing.T) (*dockerrt.Runtime, string, string) {
	t.Helper()
	n := testenv.UpTestNode(t, "fl-db")
	rt, err := dockerrt.New(dockerrt.Config{Names: n.Containers()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = rt.Close() })
	return rt, n.Name, n.RedisAddr
}

// summary is the stand-in API's checksum over every vault row.
func summary(t *testing.T, node string) string {
	t.Helper()
	out, err := exec.Command("docker", "exec", node+"-api", "forlockapi", "summary").CombinedOutput()
	require.NoError(t, err, "%s", out)
	return strings.TrimSpace(string(out))
}

func psql(t *testing.T, node, sql string) {
	t.Helper()
	out, err := exec.Command("docker", "exec", "-u", "postgres", node+"-postgres", "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", "forlock", "-c", sql).CombinedOutput()
	require.NoError(t, err, "%s", out)
}

func TestPostgresDumpAndRestoreRoundTrip(t *testing.T) {
	rt, name, redisAddr := node(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, err := exec.Command("docker", "exec", name+"-api", "forlockapi", "load", "--mb", "8").CombinedOutput()
	require.NoError(t, err, "%s", out)
	want := summary(t, name)

	pg := Postgres{Exec: rt}
	var dump bytes.Buffer
	_, err = pg.DumpCounted(ctx, &dump)
	require.NoError(t, err)
	require.True(t, bytes.HasPrefix(dump.Bytes(), []byte("PGDMP")), "custom-format dump")
	require.Greater(t, dump.Len(), 8<<20, "uncompressed dump of 8 MB of rows")

	psql(t, name, "DELETE FROM vault_items WHERE id % 3 = 0; UPDATE vault_items SET name = 'changed' WHERE id % 5 = 0")
	require.NotEqual(t, want, summary(t, name))
	require.NoError(t, pg.Restore(ctx, bytes.NewReader(dump.Bytes())))
	require.Equal(t, want, summary(t, name), "every row as at the dump")

	// A corrupted dump fails and leaves the database as it was (one
	// transaction).
	bad := bytes.Clone(dump.Bytes())
	bad = bad[:len(bad)/2]
	psql(t, name, "UPDATE vault_items SET name = 'after' WHERE id = 1")
	changed := summary(t, name)
	require.ErrorContains(t, pg.Restore(ctx, bytes.NewReader(bad)), "pg_restore")
	require.Equal(t, changed, summary(t, name), "a failed restore changes nothing")

	t.Run("redis snapshot", func(t *testing.T) {
		c := redis.NewClient(&redis.Options{Addr: redisAddr})
		defer func() { _ = c.Close() }()
		require.NoError(t, c.Set(ctx, "fleet-test-key", "v1", 0).Err())
		r := Redis{Client: c, Exec: rt}
		var rdb bytes.Buffer
		require.NoError(t, r.Snapshot(ctx, &rdb))
		require.True(t, bytes.HasPrefix(rdb.Bytes(), []byte("REDIS")), "an RDB file")
		require.Contains(t, rdb.String(), "fleet-test-key", "the snapshot has the key set before it")
		// Twice within a second still waits for a fresh save.
		require.NoError(t, c.Set(ctx, "fleet-test-key-2", "v2", 0).Err())
		rdb.Reset()
		require.NoError(t, r.Snapshot(ctx, &rdb))
		require.Contains(t, rdb.String(), "fleet-test-key-2")
	})
}

// TestDumpCountedSnapshot writes rows all the time the dump runs: the
// counts taken in the dump's snapshot must equal what a restore of that dump
// holds, and differ from the live table's count after the writes.
func TestDumpCountedSnapshot(t *testing.T) {
	rt, name, _ := node(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, err := exec.Command("docker", "exec", name+"-api", "forlockapi", "load", "--mb", "4").CombinedOutput()
	require.NoError(t, err, "%s", out)
	psql(t, name, "CREATE TABLE drill_writes (id bigserial PRIMARY KEY, at timestamptz DEFAULT now())")

	stop := make(chan struct{})
	writer := make(chan error, 1)
	go func() {
		for {
			select {
			case <-stop:
				writer <- nil
				return
			default:
			}
			if out, err := exec.Command("docker", "exec", "-u", "postgres", name+"-postgres", "psql", "-X", "-q", "-d", "forlock",
				"-c", "INSERT INTO drill_writes DEFAULT VALUES").CombinedOutput(); err != nil {
				writer <- fmt.Errorf("%w: %s", err, out)
				return
			}
		}
	}()
	time.Sleep(500 * time.Millisecond)
	pg := Postgres{Exec: rt}
	var dump bytes.Buffer
	counts, err := pg.DumpCounted(ctx, &dump)
	time.Sleep(500 * time.Millisecond)
	close(stop)
	require.NoError(t, <-writer)
	require.NoError(t, err)
	require.True(t, bytes.HasPrefix(dump.Bytes(), []byte("PGDMP")))
	byName := map[string]uint64{}
	for _, c := range counts {
		byName[c.Table] = c.Rows
	}
	require.Contains(t, byName, "public.vault_items")
	require.Positive(t, byName["public.vault_items"])
	require.Contains(t, byName, "public.drill_writes")

	live, err := pg.CountRows(ctx)
	require.NoError(t, err)
	liveBy := map[string]uint64{}
	for _, c := range live {
		liveBy[c.Table] = c.Rows
	}
	require.Greater(t, liveBy["public.drill_writes"], byName["public.drill_writes"], "rows were written after the snapshot")

	require.NoError(t, pg.Restore(ctx, bytes.NewReader(dump.Bytes())))
	restored, err := pg.CountRows(ctx)
	require.NoError(t, err)
	require.Equal(t, counts, restored, "the restored dump holds exactly the counts taken in its snapshot")
}
