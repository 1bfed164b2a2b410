package backup

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/stretchr/testify/require"

	"github.com/forlock/fleet/test/testenv"
)

const (
	s3AccessKey = "backup-test"
	s3SecretKey = "backup-test-secret"
)

// s3Server starts the S3 test server (deploy/s3) with a bucket and returns
// its endpoint and a function that stops it. Without the binary the test
// fails naming the command that builds it.
func s3Server(t *testing.T, bucket string) (string, func()) {
	t.Helper()
	testenv.RequireServerBinary(t, "s3")
	scripts := filepath.Join("..", "..", "..", "deploy", "s3")
	dir := t.TempDir()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := l.Addr().(*net.TCPAddr).Port
	require.NoError(t, l.Close())
	cmd := exec.Command(filepath.Join(scripts, "start.sh"), dir, strconv.Itoa(port))
	cmd.Env = append(os.Environ(), "FORLOCK_S3_ACCESS_KEY="+s3AccessKey, "FORLOCK_S3_SECRET_KEY="+s3SecretKey)
	out, err := cmd.Output()
	require.NoError(t, err)
	endpoint := strings.TrimSpace(string(out))
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			_ = exec.Command(filepath.Join(scripts, "stop.sh"), dir).Run()
		}
	}
	t.Cleanup(stop)
	c, err := minio.New(endpoint, &minio.Options{Creds: credentials.NewStaticV4(s3AccessKey, s3SecretKey, ""), BucketLookup: minio.BucketLookupPath})
	require.NoError(t, err)
	require.NoError(t, c.MakeBucket(context.Background(), bucket, minio.MakeBucketOptions{}))
	return endpoint, stop
}

func s3Config(endpoint string) S3Config {
	return S3Config{Endpoint: endpoint,
		AccessKey: func() (string, error) { return s3AccessKey, nil },
		SecretKey: func() (string, error) { return s3SecretKey, nil }}
}
