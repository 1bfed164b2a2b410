package backupstore

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/forlock/fleet/test/testenv"
)

// s3Server is the versitygw that TestMain starts with deploy/s3/start.sh
// when the binary is cached; s3Unavailable says why there is none.
var (
	s3Endpoint    string
	s3Unavailable string
)

const (
	testAccessKey = "backupstore-test"
	testSecretKey = "backupstore-test-secret"
)

func TestMain(m *testing.M) {
	stop := startS3()
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		stop()
		os.Exit(code)
	}))
}

func s3Scripts() string {
	dir, err := filepath.Abs(filepath.Join("..", "..", "deploy", "s3"))
	if err != nil {
		panic(err)
	}
	return dir
}

// startS3 starts the S3 test server unless its binary is not built, and
// returns what stops it.
func startS3() (stop func()) {
	noop := func() {}
	if _, err := testenv.ServerBinary("s3"); err != nil {
		s3Unavailable = err.Error()
		return noop
	}
	dir, err := os.MkdirTemp("", "backupstore-s3-")
	if err != nil {
		s3Unavailable = err.Error()
		return noop
	}
	stop = func() {
		if err := stopServer(dir); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
		_ = os.RemoveAll(dir)
	}
	endpoint, err := startServer(dir)
	if err != nil {
		stop()
		s3Unavailable = err.Error()
		s3StartFailed = true
		return noop
	}
	s3Endpoint = endpoint
	return stop
}

// startServer runs deploy/s3/start.sh DIR PORT and returns the endpoint. A
// free port can be taken between probing and the server binding it;
// start.sh notices (the server exits), so it tries a few.
func startServer(dir string) (string, error) {
	var err error
	for range 3 {
		var port int
		if port, err = freePort(); err != nil {
			continue
		}
		cmd := exec.Command(filepath.Join(s3Scripts(), "start.sh"), dir, fmt.Sprint(port))
		cmd.Env = append(os.Environ(), "FORLOCK_S3_ACCESS_KEY="+testAccessKey, "FORLOCK_S3_SECRET_KEY="+testSecretKey)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		var out []byte
		if out, err = cmd.Output(); err == nil {
			return strings.TrimSpace(string(out)), nil
		}
		err = fmt.Errorf("%w: %s", err, stderr.String())
	}
	return "", fmt.Errorf("start S3 test server: %w", err)
}

func stopServer(dir string) error {
	if out, err := exec.Command(filepath.Join(s3Scripts(), "stop.sh"), dir).CombinedOutput(); err != nil {
		return fmt.Errorf("stop S3 test server in %s: %w: %s", dir, err, out)
	}
	return nil
}

// s3StartFailed: the binary is there but the server did not start, which
// fails the S3 tests even outside CI.
var s3StartFailed bool

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// requireS3 returns the S3 test server's endpoint. When it is not built the
// test fails naming the command that builds it (skips under -short, see
// testenv); when it is built but did not start the test fails.
func requireS3(t *testing.T) string {
	t.Helper()
	if s3Endpoint != "" {
		return s3Endpoint
	}
	if s3StartFailed {
		t.Fatal(s3Unavailable)
	}
	testenv.Missing(t, "%s", s3Unavailable)
	return ""
}
