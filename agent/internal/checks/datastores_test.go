package checks

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/forlock/fleet/test/testenv"
)

const testPassword = "s3cret-Pw-do-not-log"

// freePort returns a TCP port on 127.0.0.1 nothing listens on.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := l.Addr().(*net.TCPAddr).Port
	require.NoError(t, l.Close())
	return port
}

// start starts a server process and stops it when the test ends.
func start(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	out, err := os.CreateTemp(t.TempDir(), "server-*.log")
	require.NoError(t, err)
	cmd.Stdout, cmd.Stderr = out, out
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		_ = out.Close()
	})
}

// startPostgres starts a throwaway PostgreSQL with superuser forlock
// (password testPassword), and settings ("max_connections=13"), and
// returns its port. PostgreSQL refuses to run as root, so as root it runs
// as the postgres user.
func startPostgres(t *testing.T, settings ...string) int {
	t.Helper()
	initdb := testenv.RequireCommand(t, "initdb", "postgresql-15", "/usr/lib/postgresql/*/bin")
	postgres := filepath.Join(filepath.Dir(initdb), "postgres")
	var cred *syscall.Credential
	dir := t.TempDir()
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			testenv.Missing(t, "running as root and there is no postgres user to run PostgreSQL as: run '%s' as root (or apt-get install -y postgresql-15)", testenv.FixDeps)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)} //nolint:gosec // small system IDs
		// t.TempDir's parents are root-only: use a directory of our own.
		var err2 error
		dir, err2 = os.MkdirTemp("", "fleet-pg-*")
		require.NoError(t, err2)
		t.Cleanup(func() { _ = os.RemoveAll(dir) })
		require.NoError(t, os.Chown(dir, uid, gid))
	}
	data, pwfile := filepath.Join(dir, "data"), filepath.Join(dir, "pw")
	require.NoError(t, os.WriteFile(pwfile, []byte(testPassword+"\n"), 0o600))
	if cred != nil {
		require.NoError(t, os.Chown(pwfile, int(cred.Uid), int(cred.Gid)))
	}
	initCmd := exec.CommandContext(t.Context(), initdb, "-D", data, "-U", "forlock", "--pwfile", pwfile, "-A", "scram-sha-256", "--no-sync")
	initCmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	initCmd.Env = append(os.Environ(), "LC_ALL=C")
	out, err := initCmd.CombinedOutput()
	require.NoError(t, err, "initdb: %s", out)

	port := freePort(t)
	cmd := exec.Command(postgres, "-D", data, "-p", strconv.Itoa(port), "-k", dir, //nolint:gosec // test binary
		"-c", "listen_addresses=127.0.0.1", "-c", "fsync=off")
	for _, kv := range settings {
		cmd.Args = append(cmd.Args, "-c", kv)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	start(t, cmd)
	waitForPort(t, port)
	// An open port is not a ready server: wait until it accepts queries.
	isready := testenv.RequireCommand(t, "pg_isready", "postgresql-15", "/usr/lib/postgresql/*/bin")
	require.Eventually(t, func() bool {
		return exec.Command(isready, "-q", "-h", "127.0.0.1", "-p", strconv.Itoa(port), "-d", "postgres", "-U", "forlock").Run() == nil //nolint:gosec // test binary
	}, 30*time.Second, 50*time.Millisecond, "PostgreSQL never became ready")
	return port
}

func startRedis(t *testing.T) int {
	t.Helper()
	bin := testenv.RequireCommand(t, "redis-server", "redis-server")
	port := freePort(t)
	start(t, exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--requirepass", testPassword, //nolint:gosec // test binary
		"--save", "", "--appendonly", "no", "--dir", t.TempDir()))
	waitForPort(t, port)
	return port
}

func waitForPort(t *testing.T, port int) {
	t.Helper()
	require.Eventually(t, func() bool {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 100*time.Millisecond)
		if err == nil {
			_ = c.Close()
		}
		return err == nil
	}, 30*time.Second, 50*time.Millisecond, "server on port %d", port)
}

func secretFile(t *testing.T, v string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "secret")
	require.NoError(t, os.WriteFile(p, []byte(v+"\n"), 0o600))
	return p
}

func run(t *testing.T, c Check) Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Second)
	defer cancel()
	r := c.Run(ctx)
	require.NotContains(t, r.Summary, testPassword, "a result never shows the secret")
	return r
}

func TestPostgresCheckOnRealServer(t *testing.T) {
	port := startPostgres(t)
	dsn := fmt.Sprintf("postgres://forlock:%s@127.0.0.1:%d/postgres?sslmode=disable", testPassword, port)

	r := run(t, Postgres{DSN: Secret{File: secretFile(t, dsn)}})
	require.Equal(t, OK, r.Status, r.String())
	require.Regexp(t, fmt.Sprintf(`^SELECT 1 in \d+ ms \(PostgreSQL 15\.\d+.*, database postgres on 127\.0\.0\.1:%d\); \d+ of 97 connections in use \(\d+%%; max_connections 100 less 3 reserved\)$`, port), r.Summary)

	kv := fmt.Sprintf("host=127.0.0.1 port=%d user=forlock password=%s dbname=postgres sslmode=disable", port, testPassword)
	require.Equal(t, OK, run(t, Postgres{DSN: Secret{Value: kv}}).Status)

	wrong := strings.Replace(dsn, testPassword, "wrong-"+testPassword, 1)
	r = run(t, Postgres{DSN: Secret{Value: wrong}})
	require.Equal(t, Critical, r.Status)
	require.Contains(t, r.Summary, "password authentication failed")
	require.NotContains(t, r.Summary, "wrong-")
}

func TestRedisCheckOnRealServer(t *testing.T) {
	port := startRedis(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)

	r := run(t, Redis{Addr: addr, Password: Secret{File: secretFile(t, testPassword)}})
	require.Equal(t, OK, r.Status, r.String())
	require.Regexp(t, `^PONG in \d+ ms from `+addr+`$`, r.Summary)

	r = run(t, Redis{Addr: addr})
	require.Equal(t, Critical, r.Status)
	require.Contains(t, r.Summary, "NOAUTH")

	r = run(t, Redis{Addr: addr, Password: Secret{Value: "wrong-" + testPassword}})
	require.Equal(t, Critical, r.Status)
	require.NotContains(t, r.Summary, "wrong-")
}

func TestDatastoreChecksWithoutServers(t *testing.T) {
	port := freePort(t)
	tests := []struct {
		name  string
		check Check
		want  Status
		text  string
	}{
		{"postgres unconfigured", Postgres{}, Unknown, "PostgreSQL is not configured: set postgres_dsn_file or FORLOCK_POSTGRES_DSN"},
		{"postgres closed port", Postgres{DSN: Secret{Value: fmt.Sprintf("postgres://forlock:%s@127.0.0.1:%d/db", testPassword, port)}}, Critical, "cannot connect: "},
		{"postgres bad DSN", Postgres{DSN: Secret{Value: "postgres://forlock:" + testPassword + "@[::1/db"}}, Unknown, "the PostgreSQL DSN does not parse (not shown: it may hold a password)"},
		{"postgres missing file", Postgres{DSN: Secret{File: "/nonexistent/dsn"}}, Unknown, "cannot read the PostgreSQL DSN: open /nonexistent/dsn: no such file or directory"},
		{"postgres empty file", Postgres{DSN: Secret{File: secretFile(t, " ")}}, Unknown, "is empty"},
		{"redis unconfigured", Redis{}, Unknown, "Redis is not configured: set redis_addr"},
		{"redis closed port", Redis{Addr: fmt.Sprintf("127.0.0.1:%d", port)}, Critical, fmt.Sprintf("PING to 127.0.0.1:%d failed: ", port)},
		{"redis missing password file", Redis{Addr: "127.0.0.1:1", Password: Secret{File: "/nonexistent/pw"}}, Unknown, "cannot read the Redis password: open /nonexistent/pw"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := run(t, tt.check)
			require.Equal(t, tt.want, r.Status, r.String())
			require.Contains(t, r.Summary, tt.text)
		})
	}
}

func TestSecretRead(t *testing.T) {
	v, err := Secret{Value: " dsn \n"}.Read()
	require.NoError(t, err)
	require.Equal(t, "dsn", v)
	v, err = Secret{Value: "ignored", File: secretFile(t, "from-file")}.Read()
	require.NoError(t, err)
	require.Equal(t, "from-file", v, "the file wins")
	big := filepath.Join(t.TempDir(), "big")
	require.NoError(t, os.WriteFile(big, make([]byte, maxSecretSize+1), 0o600))
	_, err = Secret{File: big}.Read()
	require.ErrorContains(t, err, "is larger than 4096 bytes")
	require.False(t, Secret{}.IsSet())
}
