package backupstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// PartSize is the size of each part of a multipart upload. Artifacts are
// streams of unknown size, for which minio-go would otherwise pick ~537 MiB
// parts and buffer one of them; with 16 MiB parts and one upload thread a
// Put buffers 16 MiB, and objects up to 10,000 parts (156 GiB) fit.
const PartSize = 16 << 20

// Defaults of S3Config's timeouts.
const (
	DefaultDialTimeout           = 10 * time.Second
	DefaultResponseHeaderTimeout = 2 * time.Minute
	DefaultIOTimeout             = 2 * time.Minute
	DefaultOpTimeout             = 2 * time.Minute
	DefaultMaxRetries            = 3
)

// S3Config configures an S3 store.
type S3Config struct {
	// Endpoint is the server's host:port, without a scheme.
	Endpoint string
	// Bucket must exist; Check says so when it does not.
	Bucket string
	// Prefix is prepended to every artifact name with a '/'. Optional; same
	// rules as an artifact name.
	Prefix string
	// AccessKey and SecretKey sign requests. Never logged.
	AccessKey, SecretKey string
	// TLS selects https.
	TLS bool
	// Region, default us-east-1.
	Region string

	// DialTimeout bounds connecting, and separately the TLS handshake.
	DialTimeout time.Duration
	// ResponseHeaderTimeout bounds the wait for a response once a request
	// is sent, including CompleteMultipartUpload on a slow server.
	ResponseHeaderTimeout time.Duration
	// IOTimeout bounds any single read or write on a connection, so a
	// stream that stalls mid-body fails instead of hanging.
	IOTimeout time.Duration
	// OpTimeout bounds a whole Stat, Delete, Check or the start of an Open,
	// retries included. Put and reading from Open are bounded by
	// IOTimeout per read/write instead, since they run as long as the data.
	OpTimeout time.Duration
	// MaxRetries of a failed request (minio-go backs off between them).
	MaxRetries int
}

// S3 stores artifacts as objects in one bucket of an S3-compatible server,
// always with path-style requests (http://endpoint/bucket/key), which every
// S3-compatible server accepts.
type S3 struct {
	cfg    S3Config
	client *minio.Client
	tr     *http.Transport
}

var _ Store = (*S3)(nil)

// NewS3 validates cfg and builds the client. It makes no request; Check does.
func NewS3(cfg S3Config) (*S3, error) {
	if cfg.Endpoint == "" || strings.Contains(cfg.Endpoint, "://") || strings.Contains(cfg.Endpoint, "/") {
		return nil, fmt.Errorf("S3 endpoint %q: want host:port without scheme or path (set TLS for https)", cfg.Endpoint)
	}
	if cfg.Bucket == "" {
		return nil, errors.New("S3 bucket is empty")
	}
	if cfg.Prefix != "" {
		if err := ValidateName(cfg.Prefix); err != nil {
			return nil, fmt.Errorf("S3 prefix: %w", err)
		}
	}
	if cfg.AccessKey == "" || cfg.SecretKey == "" {
		return nil, fmt.Errorf("S3 server %s: access key and secret key are required", cfg.Endpoint)
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	setDefault(&cfg.DialTimeout, DefaultDialTimeout)
	setDefault(&cfg.ResponseHeaderTimeout, DefaultResponseHeaderTimeout)
	setDefault(&cfg.IOTimeout, DefaultIOTimeout)
	setDefault(&cfg.OpTimeout, DefaultOpTimeout)
	if cfg.MaxRetries <= 0 {
		cfg.MaxRetries = DefaultMaxRetries
	}

	tr, err := minio.DefaultTransport(cfg.TLS)
	if err != nil {
		return nil, fmt.Errorf("S3 transport: %w", err)
	}
	dialer := &net.Dialer{Timeout: cfg.DialTimeout, KeepAlive: 30 * time.Second}
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dialer.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &deadlineConn{Conn: c, timeout: cfg.IOTimeout}, nil
	}
	tr.TLSHandshakeTimeout = cfg.DialTimeout
	tr.ResponseHeaderTimeout = cfg.ResponseHeaderTimeout
	// Idle connections are closed before the per-read deadline could fire
	// on one waiting in the pool.
	tr.IdleConnTimeout = min(cfg.IOTimeout/2, 30*time.Second)
	tr.ExpectContinueTimeout = cfg.DialTimeout

	client, err := minio.New(cfg.Endpoint, &minio.Options{
		Creds:        credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, ""),
		Secure:       cfg.TLS,
		Region:       cfg.Region,
		BucketLookup: minio.BucketLookupPath,
		Transport:    tr,
		MaxRetries:   cfg.MaxRetries,
	})
	if err != nil {
		return nil, fmt.Errorf("S3 server %s: %w", cfg.Endpoint, err)
	}
	return &S3{cfg: cfg, client: client, tr: tr}, nil
}

func setDefault(d *time.Duration, def time.Duration) {
	if *d <= 0 {
		*d = def
	}
}

// Close releases idle connections.
func (s *S3) Close() error {
	s.tr.CloseIdleConnections()
	return nil
}

func (s *S3) key(name string) string {
	if s.cfg.Prefix == "" {
		return name
	}
	return path.Join(s.cfg.Prefix, name)
}

// Location returns s3://bucket/key.
func (s *S3) Location(name string) string { return "s3://" + s.cfg.Bucket + "/" + s.key(name) }

// Check verifies that the server answers, accepts the credentials and has
// the bucket, so a backup can be refused before it starts. It lists at most
// one key: unlike a HEAD, a GET returns the server's error code.
func (s *S3) Check(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.OpTimeout)
	defer cancel()
	listCtx, stopList := context.WithCancel(ctx)
	defer stopList()
	objects := s.client.ListObjects(listCtx, s.cfg.Bucket, minio.ListObjectsOptions{Prefix: s.cfg.Prefix, MaxKeys: 1})
	first, ok := <-objects
	stopList()
	for range objects { // let the lister end
	}
	if ok && first.Err != nil {
		return s.err(ctx, "check", "", first.Err)
	}
	return nil
}

// Put uploads r as a multipart upload of PartSize parts, one at a time. On
// error minio-go aborts the upload, so no object and no parts remain.
func (s *S3) Put(ctx context.Context, name string, r io.Reader) (int64, error) {
	if err := ValidateName(name); err != nil {
		return 0, err
	}
	info, err := s.client.PutObject(ctx, s.cfg.Bucket, s.key(name), r, -1, minio.PutObjectOptions{
		PartSize:    PartSize,
		NumThreads:  1,
		ContentType: "application/octet-stream",
	})
	if err != nil {
		return 0, s.err(ctx, "upload", name, err)
	}
	return info.Size, nil
}

// Open finds the object's size with a HEAD request bounded by OpTimeout,
// then streams it; each read is bounded by IOTimeout. The download is pinned
// to the ETag seen by the HEAD, so an object replaced meanwhile fails the
// read instead of mixing two artifacts.
func (s *S3) Open(ctx context.Context, name string) (io.ReadCloser, int64, error) {
	if err := ValidateName(name); err != nil {
		return nil, 0, err
	}
	info, err := s.stat(ctx, name)
	if err != nil {
		return nil, 0, err
	}
	var opts minio.GetObjectOptions
	if info.ETag != "" {
		if err := opts.SetMatchETag(info.ETag); err != nil {
			return nil, 0, fmt.Errorf("S3 download %s: %w", s.Location(name), err)
		}
	}
	obj, err := s.client.GetObject(ctx, s.cfg.Bucket, s.key(name), opts)
	if err != nil {
		return nil, 0, s.err(ctx, "download", name, err)
	}
	return &objectReader{obj: obj, s: s, ctx: ctx, name: name}, info.Size, nil
}

// objectReader maps download errors to the package's errors.
type objectReader struct {
	obj  *minio.Object
	s    *S3
	ctx  context.Context // the download's own
	name string
}

func (r *objectReader) Read(p []byte) (int, error) {
	n, err := r.obj.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		err = r.s.err(r.ctx, "download", r.name, err)
	}
	return n, err
}

func (r *objectReader) Close() error { return r.obj.Close() }

func (s *S3) stat(ctx context.Context, name string) (minio.ObjectInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.OpTimeout)
	defer cancel()
	info, err := s.client.StatObject(ctx, s.cfg.Bucket, s.key(name), minio.StatObjectOptions{})
	if err != nil {
		return minio.ObjectInfo{}, s.err(ctx, "stat", name, err)
	}
	return info, nil
}

// Stat returns the object's size.
func (s *S3) Stat(ctx context.Context, name string) (int64, error) {
	if err := ValidateName(name); err != nil {
		return 0, err
	}
	info, err := s.stat(ctx, name)
	return info.Size, err
}

// Delete removes the object; S3 treats a missing one as deleted.
func (s *S3) Delete(ctx context.Context, name string) error {
	if err := ValidateName(name); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.OpTimeout)
	defer cancel()
	if err := s.client.RemoveObject(ctx, s.cfg.Bucket, s.key(name), minio.RemoveObjectOptions{}); err != nil {
		return s.err(ctx, "delete", name, err)
	}
	return nil
}
