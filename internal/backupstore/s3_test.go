package backupstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/stretchr/testify/require"
)

// newTestS3 returns a store on the test server with a fresh bucket.
func newTestS3(t *testing.T, prefix string) *S3 {
	t.Helper()
	endpoint := requireS3(t)
	s, err := NewS3(S3Config{
		Endpoint:  endpoint,
		Bucket:    strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name())),
		Prefix:    prefix,
		AccessKey: testAccessKey,
		SecretKey: testSecretKey,
	})
	require.NoError(t, err)
	ctx := context.Background()
	require.NoError(t, s.client.MakeBucket(ctx, s.cfg.Bucket, minio.MakeBucketOptions{}))
	t.Cleanup(func() {
		// Empty and remove the bucket, so -count=N starts afresh.
		for obj := range s.client.ListObjects(ctx, s.cfg.Bucket, minio.ListObjectsOptions{Recursive: true}) {
			require.NoError(t, obj.Err)
			require.NoError(t, s.client.RemoveObject(ctx, s.cfg.Bucket, obj.Key, minio.RemoveObjectOptions{}))
		}
		require.NoError(t, s.client.RemoveBucket(ctx, s.cfg.Bucket))
		require.NoError(t, s.Close())
	})
	return s
}

func TestNewS3(t *testing.T) {
	ok := S3Config{Endpoint: "127.0.0.1:9000", Bucket: "b", AccessKey: "a", SecretKey: "s"}
	tests := []struct {
		name    string
		edit    func(*S3Config)
		wantErr string
	}{
		{"ok", func(*S3Config) {}, ""},
		{"scheme", func(c *S3Config) { c.Endpoint = "http://127.0.0.1:9000" }, "want host:port without scheme or path"},
		{"no bucket", func(c *S3Config) { c.Bucket = "" }, "S3 bucket is empty"},
		{"bad prefix", func(c *S3Config) { c.Prefix = "../x" }, "S3 prefix: invalid artifact name"},
		{"no secret", func(c *S3Config) { c.SecretKey = "" }, "access key and secret key are required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := ok
			tt.edit(&cfg)
			s, err := NewS3(cfg)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.NoError(t, s.Close())
		})
	}
}

func TestS3RoundTrip(t *testing.T) {
	ctx := context.Background()
	s := newTestS3(t, "fleet")
	require.NoError(t, s.Check(ctx))
	data := bytes.Repeat([]byte("forlock "), 100_000)
	const name = "node-1/redis_20260101_120000.rdb"
	require.Equal(t, "s3://tests3roundtrip/fleet/node-1/redis_20260101_120000.rdb", s.Location(name))

	n, err := s.Put(ctx, name, bytes.NewReader(data))
	require.NoError(t, err)
	require.Equal(t, int64(len(data)), n)
	_, err = s.client.StatObject(ctx, s.cfg.Bucket, "fleet/"+name, minio.StatObjectOptions{})
	require.NoError(t, err, "stored under the prefix")

	size, err := s.Stat(ctx, name)
	require.NoError(t, err)
	require.Equal(t, int64(len(data)), size)

	rc, size, err := s.Open(ctx, name)
	require.NoError(t, err)
	got, err := io.ReadAll(rc)
	require.NoError(t, err)
	require.NoError(t, rc.Close())
	require.Equal(t, int64(len(data)), size)
	require.Equal(t, data, got)

	// Empty artifacts work too (a multipart upload of one empty part).
	n, err = s.Put(ctx, "empty", bytes.NewReader(nil))
	require.NoError(t, err)
	require.Zero(t, n)

	require.NoError(t, s.Delete(ctx, name))
	require.NoError(t, s.Delete(ctx, name), "deleting twice")
	_, err = s.Stat(ctx, name)
	require.ErrorIs(t, err, ErrNotFound)
	require.ErrorContains(t, err, "artifact not found: s3://tests3roundtrip/fleet/node-1/redis_20260101_120000.rdb on S3 server "+s.cfg.Endpoint)
	_, _, err = s.Open(ctx, name)
	require.ErrorIs(t, err, ErrNotFound)
}

func TestS3CheckRefusals(t *testing.T) {
	ctx := context.Background()
	s := newTestS3(t, "")
	tests := []struct {
		name    string
		edit    func(*S3Config)
		wantErr string
	}{
		{"missing bucket", func(c *S3Config) { c.Bucket = "nosuchbucket" }, `S3 bucket "nosuchbucket" does not exist on server ` + s.cfg.Endpoint},
		{"wrong secret", func(c *S3Config) { c.SecretKey = "wrong" }, "S3 server " + s.cfg.Endpoint + " refused access (SignatureDoesNotMatch)"},
		{"wrong access key", func(c *S3Config) { c.AccessKey = "nobody" }, "S3 server " + s.cfg.Endpoint + " refused access (XAdminUserNotFound)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := s.cfg
			tt.edit(&cfg)
			bad, err := NewS3(cfg)
			require.NoError(t, err)
			defer func() { require.NoError(t, bad.Close()) }()
			require.ErrorContains(t, bad.Check(ctx), tt.wantErr)
			_, err = bad.Put(ctx, "x", bytes.NewReader([]byte("x")))
			require.ErrorContains(t, err, tt.wantErr)
		})
	}
}

func TestS3RefusesTraversal(t *testing.T) {
	ctx := context.Background()
	s := newTestS3(t, "fleet")
	for _, name := range []string{"../other/x", "/x", "a/../../x", "a//b"} {
		t.Run(name, func(t *testing.T) {
			_, err := s.Put(ctx, name, bytes.NewReader([]byte("x")))
			require.ErrorIs(t, err, ErrInvalidName)
			_, _, err = s.Open(ctx, name)
			require.ErrorIs(t, err, ErrInvalidName)
			_, err = s.Stat(ctx, name)
			require.ErrorIs(t, err, ErrInvalidName)
			require.ErrorIs(t, s.Delete(ctx, name), ErrInvalidName)
		})
	}
}

// stream is a reader of unknown size: no Seek, no ReadAt, no Len, so
// minio-go cannot find the size and must stream in parts.
type stream struct{ r io.Reader }

func (s stream) Read(p []byte) (int, error) { return s.r.Read(p) }

// randomReader returns pseudo-random bytes from a fixed seed.
func randomReader(seed uint64) io.Reader {
	return readerFunc(rand.NewChaCha8([32]byte{byte(seed)}).Read)
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

// heapPeak samples the live heap until stop is called and returns the
// highest value seen.
func heapPeak() (stop func() uint64) {
	var (
		peak uint64
		wg   sync.WaitGroup
	)
	done := make(chan struct{})
	wg.Go(func() {
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapAlloc)
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	})
	return func() uint64 {
		close(done)
		wg.Wait()
		return peak
	}
}

// TestS3StreamingUpload uploads 40 MiB of unknown size and checks that the
// heap grows by a bounded amount (parts of PartSize, one at a time), not
// by the size of the artifact or minio-go's default ~537 MiB part.
func TestS3StreamingUpload(t *testing.T) {
	ctx := context.Background()
	s := newTestS3(t, "")
	const size = 40 << 20

	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	stopPeak := heapPeak()
	in := sha256.New()
	n, err := s.Put(ctx, "big", stream{io.TeeReader(io.LimitReader(randomReader(1), size), in)})
	peak := stopPeak()
	require.NoError(t, err)
	require.Equal(t, int64(size), n)
	growth := int64(peak) - int64(before.HeapAlloc)
	t.Logf("heap before %d MiB, peak during upload %d MiB (growth %d MiB)", before.HeapAlloc>>20, peak>>20, growth>>20)
	require.Less(t, growth, int64(100<<20), "heap growth during a 40 MiB upload")

	rc, got, err := s.Open(ctx, "big")
	require.NoError(t, err)
	defer func() { require.NoError(t, rc.Close()) }()
	require.Equal(t, int64(size), got)
	out := sha256.New()
	_, err = io.Copy(out, rc)
	require.NoError(t, err)
	require.Equal(t, in.Sum(nil), out.Sum(nil), "downloaded bytes differ from uploaded")
}

// A source that fails after a part went up leaves no object and no
// unfinished multipart upload.
func TestS3FailedUploadLeavesNothing(t *testing.T) {
	ctx := context.Background()
	s := newTestS3(t, "fleet")
	errSource := errors.New("pg_dump exited 1")

	_, err := s.Put(ctx, "node-1/broken", stream{&failingReader{n: PartSize + 4<<20, err: errSource}})
	require.ErrorIs(t, err, errSource)
	require.ErrorContains(t, err, "S3 upload s3://tests3faileduploadleavesnothing/fleet/node-1/broken on server "+s.cfg.Endpoint+": pg_dump exited 1")

	_, err = s.Stat(ctx, "node-1/broken")
	require.ErrorIs(t, err, ErrNotFound)
	var incomplete []string
	for u := range s.client.ListIncompleteUploads(ctx, s.cfg.Bucket, "", true) {
		require.NoError(t, u.Err)
		incomplete = append(incomplete, u.Key)
	}
	require.Empty(t, incomplete, "the multipart upload was aborted")
}

// TestS3ServerDown stops a server of its own and expects a clear error
// within the configured timeouts, not a hang.
func TestS3ServerDown(t *testing.T) {
	requireS3(t)
	ctx := context.Background()
	dir := t.TempDir()
	endpoint, err := startServer(dir)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, stopServer(dir)) })
	s, err := NewS3(S3Config{
		Endpoint: endpoint, Bucket: "down", AccessKey: testAccessKey, SecretKey: testSecretKey,
		DialTimeout: 2 * time.Second, ResponseHeaderTimeout: 2 * time.Second, IOTimeout: 2 * time.Second,
		OpTimeout: 10 * time.Second,
	})
	require.NoError(t, err)
	defer func() { require.NoError(t, s.Close()) }()
	require.NoError(t, s.client.MakeBucket(ctx, "down", minio.MakeBucketOptions{}))
	_, err = s.Put(ctx, "a", bytes.NewReader([]byte("a")))
	require.NoError(t, err)

	require.NoError(t, stopServer(dir))
	want := "S3 server " + endpoint + " unreachable"
	calls := map[string]func() error{
		"check":  func() error { return s.Check(ctx) },
		"stat":   func() error { _, err := s.Stat(ctx, "a"); return err },
		"open":   func() error { _, _, err := s.Open(ctx, "a"); return err },
		"put":    func() error { _, err := s.Put(ctx, "b", bytes.NewReader([]byte("b"))); return err },
		"delete": func() error { return s.Delete(ctx, "a") },
	}
	for name, call := range calls {
		t.Run(name, func(t *testing.T) {
			start := time.Now()
			err := call()
			t.Logf("%s after %v: %v", name, time.Since(start).Round(time.Millisecond), err)
			require.ErrorIs(t, err, ErrUnreachable)
			require.ErrorContains(t, err, want)
			require.ErrorContains(t, err, "connection refused")
		})
	}
}

// TestS3Stalled talks to a server that accepts connections and never
// answers: the response-header timeout ends every call.
func TestS3Stalled(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var (
		mu    sync.Mutex
		conns []net.Conn
		wg    sync.WaitGroup
	)
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			go func() { _, _ = io.Copy(io.Discard, c) }()
		}
	})
	t.Cleanup(func() {
		_ = l.Close()
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})

	s, err := NewS3(S3Config{
		Endpoint: l.Addr().String(), Bucket: "bucket", AccessKey: "a", SecretKey: "s",
		ResponseHeaderTimeout: 200 * time.Millisecond, IOTimeout: time.Second, MaxRetries: 1,
	})
	require.NoError(t, err)
	defer func() { require.NoError(t, s.Close()) }()
	ctx := context.Background()

	_, err = s.Stat(ctx, "x")
	require.ErrorIs(t, err, ErrUnreachable)
	require.ErrorContains(t, err, "S3 server "+l.Addr().String()+" unreachable: stopped answering (stat s3://bucket/x)")
	_, err = s.Put(ctx, "x", bytes.NewReader([]byte("x")))
	require.ErrorIs(t, err, ErrUnreachable)
	require.ErrorContains(t, err, "S3 server "+l.Addr().String()+" unreachable")
}
