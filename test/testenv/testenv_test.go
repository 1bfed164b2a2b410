package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// childEnv makes the test binary, run again by runChild, play the test that
// needs the S3 test server.
const childEnv = "TESTENV_CHILD"

// TestChildNeedsS3 is the test runChild runs in a subprocess; in the parent
// run it does nothing.
func TestChildNeedsS3(t *testing.T) {
	if os.Getenv(childEnv) == "" {
		return
	}
	bin := RequireServerBinary(t, "s3")
	t.Logf("s3 server at %s", bin)
}

// runChild runs TestChildNeedsS3 in a new process of this test binary with
// FORLOCK_BIN_CACHE=cache and returns its exit error and output.
func runChild(t *testing.T, cache string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(os.Args[0], append([]string{"-test.run=^TestChildNeedsS3$", "-test.v", "-test.count=1"}, args...)...)
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); k != "FORLOCK_S3_CACHE" && k != "FORLOCK_BIN_CACHE" && k != "VERSITYGW_VERSION" {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, childEnv+"=1", "FORLOCK_BIN_CACHE="+cache)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// A test that needs a server that is not built fails, naming the command
// that builds it; it skips only under -short; with the server built it
// passes.
func TestMissingServerFailsNamingTheFix(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "no-cache")
	fix := "the S3 test server is not built (no executable " + missing + "/versitygw-v1.8.0): run 'make test-deps' (or deploy/s3/build.sh)"

	out, err := runChild(t, missing)
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee, "the child fails: %s", out)
	require.Contains(t, out, "--- FAIL: TestChildNeedsS3", out)
	require.Contains(t, out, fix, out)
	require.NotContains(t, out, "--- SKIP", out)

	out, err = runChild(t, missing, "-test.short")
	require.NoError(t, err, out)
	require.Contains(t, out, "--- SKIP: TestChildNeedsS3", out)
	require.Contains(t, out, fix, out)

	built := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(built, "versitygw-v1.8.0"), []byte("#!/bin/sh\n"), 0o755)) //nolint:gosec // an executable stand-in
	out, err = runChild(t, built)
	require.NoError(t, err, out)
	require.Contains(t, out, "--- PASS: TestChildNeedsS3", out)
	require.Contains(t, out, "s3 server at "+built+"/versitygw-v1.8.0", out)
}

func TestServerPath(t *testing.T) {
	t.Setenv("FORLOCK_BIN_CACHE", "")
	t.Setenv("FORLOCK_S3_CACHE", "")
	t.Setenv("VAULT_VERSION", "")
	require.Equal(t, "/var/cache/forlock-fleet/bin/vault-v1.21.0", ServerPath("vault"))
	t.Setenv("FORLOCK_BIN_CACHE", "/c")
	t.Setenv("REGISTRY_VERSION", "v9")
	require.Equal(t, "/c/registry-v9", ServerPath("registry"))
	require.Equal(t, "/c/versitygw-v1.8.0", ServerPath("s3"))
	t.Setenv("FORLOCK_S3_CACHE", "/s3")
	require.Equal(t, "/s3/versitygw-v1.8.0", ServerPath("s3"), "the S3 scripts' own variable wins")
}

func TestRequireCommand(t *testing.T) {
	sh, err := exec.LookPath("sh")
	require.NoError(t, err)
	require.Equal(t, sh, RequireCommand(t, "sh", "dash", "/nowhere"), "found in PATH")
	dir := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "15", "bin"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "15", "bin", "forlock-no-such-cmd"), nil, 0o755)) //nolint:gosec // a stand-in
	require.Equal(t, filepath.Join(dir, "15", "bin", "forlock-no-such-cmd"),
		RequireCommand(t, "forlock-no-such-cmd", "none", filepath.Join(dir, "*", "bin")), "found in a directory glob")
}
