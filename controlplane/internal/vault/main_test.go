package vault

import (
	"flag"
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

// The Vault dev server that TestMain starts with deploy/vault/start.sh; the
// tests that need one call requireVault. vaultUnavailable says why there is
// none.
var (
	vaultAddr        string
	vaultUnavailable string
)

// testRootToken is the dev server's root token, passed to start.sh in the
// environment.
const testRootToken = "vault-pkg-test-root"

func TestMain(m *testing.M) {
	flag.Parse()
	stop := func() {}
	if testing.Short() {
		vaultUnavailable = "needs a Vault dev server: not under -short"
	} else {
		stop = startShared()
	}
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		stop()
		os.Exit(code)
	}))
}

func vaultScripts() string {
	dir, err := filepath.Abs(filepath.Join("..", "..", "..", "deploy", "vault"))
	if err != nil {
		panic(err)
	}
	return dir
}

// startShared starts the dev server the tests share and prepares its
// engines, and returns what stops it.
func startShared() (stop func()) {
	if _, err := testenv.ServerBinary("vault"); err != nil {
		vaultUnavailable = err.Error()
		return func() {}
	}
	dir, err := os.MkdirTemp("", "vault-pkg-test-")
	if err != nil {
		vaultUnavailable = err.Error()
		return func() {}
	}
	stop = func() {
		if err := stopServer(dir); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
		_ = os.RemoveAll(dir)
	}
	addr, err := startServer(dir)
	if err != nil {
		stop()
		vaultUnavailable = err.Error()
		return func() {}
	}
	if err := setupShared(addr); err != nil {
		stop()
		vaultUnavailable = "set up the Vault dev server: " + err.Error()
		return func() {}
	}
	vaultAddr = addr
	return stop
}

// startServer runs deploy/vault/start.sh DIR PORT and returns the address. A
// free port can be taken between probing and the server binding it;
// start.sh notices (the server exits), so it tries a few.
func startServer(dir string) (string, error) {
	var err error
	for range 3 {
		var port int
		if port, err = freePort(); err != nil {
			continue
		}
		cmd := exec.Command(filepath.Join(vaultScripts(), "start.sh"), dir, fmt.Sprint(port))
		cmd.Env = append(os.Environ(), "VAULT_DEV_ROOT_TOKEN_ID="+testRootToken)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		var out []byte
		if out, err = cmd.Output(); err == nil {
			return strings.TrimSpace(string(out)), nil
		}
		err = fmt.Errorf("%w: %s", err, stderr.String())
	}
	return "", fmt.Errorf("start the Vault dev server: %w", err)
}

func stopServer(dir string) error {
	if out, err := exec.Command(filepath.Join(vaultScripts(), "stop.sh"), dir).CombinedOutput(); err != nil {
		return fmt.Errorf("stop the Vault dev server in %s: %w: %s", dir, err, out)
	}
	return nil
}

// startOwnServer starts a dev server for one test (one it may seal or stop)
// and returns its address and what stops it early; cleanup stops it anyway.
func startOwnServer(t *testing.T) (addr string, stop func()) {
	t.Helper()
	requireVault(t)
	dir := t.TempDir()
	addr, err := startServer(dir)
	if err != nil {
		t.Fatal(err)
	}
	stop = func() {
		if err := stopServer(dir); err != nil {
			t.Error(err)
		}
	}
	t.Cleanup(stop)
	return addr, stop
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// requireVault returns the shared dev server's address. It skips under
// -short and fails when the dev server is missing or did not start, saying
// how to get it.
func requireVault(t *testing.T) string {
	t.Helper()
	if vaultAddr == "" {
		testenv.Missing(t, "%s", vaultUnavailable)
	}
	return vaultAddr
}

// sprintf formats when the format has a verb, so table entries may omit it.
func sprintf(format string, args ...any) string {
	if !strings.Contains(format, "%") {
		return format
	}
	return fmt.Sprintf(format, args...)
}
