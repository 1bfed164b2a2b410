package rdb

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/forlock/fleet/test/testenv"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var update = flag.Bool("update", false, "rewrite the RDB files in testdata from a real redis-server")

// server starts a real redis-server on a unix socket in a temporary
// directory and returns a client and the path of its dump file.
func server(t *testing.T) (*redis.Client, string) {
	t.Helper()
	bin := testenv.RequireCommand(t, "redis-server", "redis-server")
	dir := t.TempDir()
	sock := filepath.Join(dir, "redis.sock")
	cmd := exec.Command(bin, "--port", "0", "--unixsocket", sock, "--dir", dir, "--save", "", "--appendonly", "no", "--databases", "16")
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	c := redis.NewClient(&redis.Options{Network: "unix", Addr: sock, DB: 0})
	t.Cleanup(func() { _ = c.Close() })
	deadline := time.Now().Add(10 * time.Second)
	for c.Ping(context.Background()).Err() != nil {
		require.True(t, time.Now().Before(deadline), "redis-server did not answer on %s", sock)
		time.Sleep(20 * time.Millisecond)
	}
	return c, filepath.Join(dir, "dump.rdb")
}

// fill writes n keys of every value type Redis 7 saves (small and large
// encodings, with and without expiry) into database db.
func fill(t *testing.T, c *redis.Client, db, n int) {
	t.Helper()
	ctx := context.Background()
	p := c.Pipeline()
	p.Select(ctx, db)
	big := strings.Repeat("x", 300) // past the listpack limits: plain encodings
	for i := range n {
		k := fmt.Sprintf("k%d:%d", db, i)
		switch i % 9 {
		case 0:
			p.Set(ctx, k, i, 0) // an integer-encoded string
		case 1:
			p.Set(ctx, k, strings.Repeat("compressible ", 20), time.Hour) // LZF, with expiry
		case 2:
			p.HSet(ctx, k, "a", 1, "b", big)
		case 3:
			p.HSet(ctx, k, "a", 1, "b", "2")
		case 4:
			p.RPush(ctx, k, "a", big, 3)
		case 5:
			p.SAdd(ctx, k, 1, 2, 3) // intset
			p.SAdd(ctx, k+"s", "a", big)
		case 6:
			p.ZAdd(ctx, k, redis.Z{Score: 1.5, Member: "a"}, redis.Z{Score: 2, Member: big})
			p.ZAdd(ctx, k+"s", redis.Z{Score: 1, Member: "a"})
		case 7:
			p.XAdd(ctx, &redis.XAddArgs{Stream: k, Values: []any{"f", "v"}})
			p.XAdd(ctx, &redis.XAddArgs{Stream: k, Values: []any{"f", "w"}})
			p.XGroupCreate(ctx, k, "g", "0")
			p.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "g", Consumer: "c", Streams: []string{k, ">"}, Count: 1})
		case 8:
			p.SetEx(ctx, k, "v", time.Hour)
		}
	}
	_, err := p.Exec(ctx)
	require.NoError(t, err)
}

// dbsizes is DBSIZE of every database of the server that holds keys.
func dbsizes(t *testing.T, c *redis.Client) map[uint32]uint64 {
	t.Helper()
	ctx := context.Background()
	out := map[uint32]uint64{}
	for db := range 16 {
		conn := c.Conn()
		require.NoError(t, conn.Select(ctx, db).Err())
		n, err := conn.DBSize(ctx).Result()
		require.NoError(t, err)
		require.NoError(t, conn.Close())
		if n > 0 {
			out[uint32(db)] = uint64(n)
		}
	}
	return out
}

func TestCountRealRDBFiles(t *testing.T) {
	cases := []struct {
		name string
		dbs  map[int]int // database → keys written by fill
	}{
		{"empty", nil},
		{"one key", map[int]int{0: 1}},
		{"many", map[int]int{0: 5000}},
		{"several databases", map[int]int{0: 30, 3: 1, 15: 200}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, dump := server(t)
			for db, n := range tc.dbs {
				fill(t, c, db, n)
			}
			want := dbsizes(t, c)
			require.NoError(t, c.Save(context.Background()).Err())
			b, err := os.ReadFile(dump)
			require.NoError(t, err)
			s, err := Count(bytes.NewReader(b))
			require.NoError(t, err)
			require.Equal(t, want, s.Keys, "key counts read from the file equal DBSIZE")
			require.GreaterOrEqual(t, s.Version, 9)
			if tc.dbs == nil {
				require.Zero(t, s.Total())
			} else {
				require.NotZero(t, s.Total())
			}
			if *update && len(b) < 64<<10 {
				name := strings.ReplaceAll(tc.name, " ", "-") + ".rdb"
				require.NoError(t, os.WriteFile(filepath.Join("testdata", name), b, 0o644))
			}

			// Every truncation of the file is an error, never a count.
			for cut := 0; cut < len(b)-8 && cut < 4096; cut += 1 + cut/64 {
				_, err := Count(bytes.NewReader(b[:cut]))
				require.ErrorIs(t, err, ErrFormat, "cut at %d", cut)
			}
		})
	}
}

func TestCountRejects(t *testing.T) {
	files, err := filepath.Glob("testdata/*.rdb")
	require.NoError(t, err)
	require.NotEmpty(t, files, "testdata has RDB files from a real redis-server (go test -run TestCountRealRDBFiles -update)")
	good, err := os.ReadFile("testdata/one-key.rdb")
	require.NoError(t, err)
	s, err := Count(bytes.NewReader(good))
	require.NoError(t, err)
	require.Equal(t, map[uint32]uint64{0: 1}, s.Keys)

	// RESIZEDB (0xFB) says 1 key: make it say 2.
	i := bytes.Index(good, []byte{opResizeDB, 1})
	require.Positive(t, i)
	lying := bytes.Clone(good)
	lying[i+1] = 2

	cases := []struct {
		name string
		in   []byte
		want string
	}{
		{"empty", nil, "truncated at byte 0"},
		{"no magic", []byte("REDIX0010\xff"), "no REDIS magic"},
		{"bad version", []byte("REDIS00a0\xff"), "version"},
		{"future version", []byte("REDIS0099\xff"), "version"},
		{"module aux", []byte("REDIS0010\xf7"), "not supported"},
		{"module value", []byte("REDIS0010\x06\x01k"), "module value"},
		{"unknown type", []byte("REDIS0010\x40\x01k"), "unknown value type 64"},
		{"db out of range", []byte("REDIS0010\xfe\x80\x00\x01\x00\x00\xff"), "out of range"},
		{"huge string", []byte("REDIS0010\x00\x81\xff\xff\xff\xff\xff\xff\xff\xff"), "more than a string"},
		{"bad length byte", []byte("REDIS0010\x00\x82"), "length byte"},
		{"encoding as length", []byte("REDIS0010\xfe\xc0"), "string encoding where a length"},
		{"bad string encoding", []byte("REDIS0010\x00\xc4"), "string encoding 4"},
		{"lying RESIZEDB", lying, "RESIZEDB says 2 keys, the file holds 1"},
		{"two RESIZEDB", []byte("REDIS0010\xfb\x00\x00\xfb\x00\x00\xff"), "second RESIZEDB"},
		{"huge count", []byte("REDIS0010\x02\x01k\x81\xff\xff\xff\xff\xff\xff\xff\xff\x00"), "truncated"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Count(bytes.NewReader(tc.in))
			require.ErrorIs(t, err, ErrFormat)
			require.ErrorContains(t, err, tc.want)
		})
	}
}

func FuzzCount(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.rdb")
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("REDIS0010\xfe\x00\xfb\x01\x00\x00\x01k\x01v\xff"))
	f.Fuzz(func(t *testing.T, in []byte) {
		s, err := Count(bytes.NewReader(in))
		if err != nil {
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("an error that is not ErrFormat: %v", err)
			}
			return
		}
		// Every key counted took at least two bytes of input (type, key).
		if s.Total() > uint64(len(in)) {
			t.Fatalf("%d keys from %d bytes", s.Total(), len(in))
		}
	})
}
