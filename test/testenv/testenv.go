// Package testenv is where a test asks the machine for what it needs: a
// Docker Engine, a test node image, a test server binary, a command, root.
// It holds the one rule for a missing requirement: under -short the test is
// skipped; otherwise it fails, naming the command that provides it (mostly
// `make test-deps`, which installs and builds everything under one lock).
// Under -short a test that needs the Docker Engine is skipped even when one
// is there: -short is the unit tests, quick and without outside parts.
// A test never skips for a missing requirement in a full run, so a run
// cannot pass by skipping. The servers themselves are still started by each
// package (deploy/<server>/start.sh); testenv only finds their binaries.
package testenv

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// FixDeps is the command that installs and builds every test requirement.
const FixDeps = "make test-deps"

// Missing reports a missing requirement: under -short it skips the test,
// otherwise it fails it with msg, which names the fix.
func Missing(tb testing.TB, format string, args ...any) {
	tb.Helper()
	msg := fmt.Sprintf(format, args...)
	if testing.Short() {
		tb.Skip(msg)
	}
	tb.Fatal(msg)
}

// Require fails (or, under -short, skips) the test when err is not nil; err
// names the fix.
func Require(tb testing.TB, err error) {
	tb.Helper()
	if err != nil {
		Missing(tb, "%v", err)
	}
}

var dockerOnce = sync.OnceValue(func() error {
	if _, err := exec.LookPath("docker"); err != nil {
		return errors.New("the docker command is missing: install Docker Engine (https://docs.docker.com/engine/install/debian/)")
	}
	if os.Getenv("DOCKER_HOST") == "" {
		if _, err := os.Stat("/var/run/docker.sock"); err != nil {
			return errors.New("no Docker Engine: /var/run/docker.sock is absent and DOCKER_HOST is unset: install and start Docker Engine (systemctl start docker)")
		}
	}
	if out, err := exec.Command("docker", "version", "--format", "{{.Server.Version}}").CombinedOutput(); err != nil {
		return fmt.Errorf("the Docker Engine does not answer (%w: %s): start it (systemctl start docker) and check access to its socket",
			err, strings.TrimSpace(string(out)))
	}
	return nil
})

// DockerError says why there is no usable Docker Engine, or nil.
func DockerError() error { return dockerOnce() }

// RequireDocker needs a Docker Engine that answers.
func RequireDocker(tb testing.TB) {
	tb.Helper()
	if testing.Short() {
		tb.Skip("-short: needs the Docker Engine")
	}
	Require(tb, DockerError())
}

// ImageError says why image (":latest" when it has no tag) is not on the
// local Docker Engine, or nil. The test node images come from
// deploy/testnode/build-images.sh.
func ImageError(image string) error {
	if err := DockerError(); err != nil {
		return err
	}
	if !strings.Contains(image[strings.LastIndexByte(image, '/')+1:], ":") {
		image += ":latest"
	}
	if exec.Command("docker", "image", "inspect", image).Run() != nil {
		return fmt.Errorf("the test node image %s is missing: run '%s' (or deploy/testnode/build-images.sh)", image, FixDeps)
	}
	return nil
}

// RequireImage needs a test node image on the local Docker Engine.
func RequireImage(tb testing.TB, images ...string) {
	tb.Helper()
	if testing.Short() {
		tb.Skip("-short: needs the Docker Engine and test images")
	}
	for _, img := range images {
		Require(tb, ImageError(img))
	}
}

// A server is a test server built by deploy/<dir>/build.sh into a cache
// outside the repo, named <name>-<version>.
type server struct {
	dir, name, versionEnv, version, cacheEnv, note string
}

var servers = map[string]server{
	"s3":       {dir: "s3", name: "versitygw", versionEnv: "VERSITYGW_VERSION", version: "v1.8.0", cacheEnv: "FORLOCK_S3_CACHE", note: "the S3 test server"},
	"registry": {dir: "registry", name: "registry", versionEnv: "REGISTRY_VERSION", version: "v3.1.2", note: "the test image registry"},
	"vault":    {dir: "vault", name: "vault", versionEnv: "VAULT_VERSION", version: "v1.21.0", note: "the Vault dev server"},
}

// DefaultBinCache is where the build scripts put the test servers unless
// FORLOCK_BIN_CACHE says otherwise.
const DefaultBinCache = "/var/cache/forlock-fleet/bin"

// ServerPath is where deploy/<kind>/build.sh puts the test server kind
// ("s3", "registry" or "vault"), whether or not it is built.
func ServerPath(kind string) string {
	s, ok := servers[kind]
	if !ok {
		panic("testenv: unknown test server " + kind)
	}
	cache := cmp.Or(os.Getenv(s.cacheEnv), os.Getenv("FORLOCK_BIN_CACHE"), DefaultBinCache)
	return filepath.Join(cache, s.name+"-"+cmp.Or(os.Getenv(s.versionEnv), s.version))
}

// ServerBinary returns the path of the built test server kind ("s3",
// "registry" or "vault"), or an error naming the command that builds it.
func ServerBinary(kind string) (string, error) {
	bin := ServerPath(kind)
	s := servers[kind]
	if fi, err := os.Stat(bin); err != nil || fi.Mode()&0o111 == 0 {
		extra := ""
		if kind == "vault" {
			extra = ", 10-16 minutes the first time"
		}
		return "", fmt.Errorf("%s is not built (no executable %s): run '%s' (or deploy/%s/build.sh%s)", s.note, bin, FixDeps, s.dir, extra)
	}
	return bin, nil
}

// RequireServerBinary needs the test server kind ("s3", "registry" or
// "vault") built and returns its path.
func RequireServerBinary(tb testing.TB, kind string) string {
	tb.Helper()
	bin, err := ServerBinary(kind)
	Require(tb, err)
	return bin
}

// RequireCommand needs the command name, looked up in PATH and then in the
// given directory globs (e.g. /usr/lib/postgresql/*/bin), and returns its
// path. aptPackage is the Debian package that provides it.
func RequireCommand(tb testing.TB, name, aptPackage string, dirs ...string) string {
	tb.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, d := range dirs {
		if m, _ := filepath.Glob(filepath.Join(d, name)); len(m) > 0 {
			return m[len(m)-1]
		}
	}
	Missing(tb, "%s is not installed: run '%s' as root (or apt-get install -y %s)", name, FixDeps, aptPackage)
	return ""
}

// RequireRoot needs the test to run as root; why says what for.
func RequireRoot(tb testing.TB, why string) {
	tb.Helper()
	if os.Geteuid() != 0 {
		Missing(tb, "%s needs root: run the tests as root (sudo make test), or with -short", why)
	}
}

// RequireTmpfs mounts a tmpfs of size (e.g. "1m") on dir, unmounted when
// the test ends. Mounting needs root (CAP_SYS_ADMIN).
func RequireTmpfs(tb testing.TB, dir, size string) {
	tb.Helper()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size="+size); err != nil {
		if errors.Is(err, unix.EPERM) {
			Missing(tb, "mounting a %s tmpfs is not permitted here (%v): run the tests as root (sudo make test), or with -short", size, err)
		}
		tb.Fatalf("mount a %s tmpfs on %s: %v", size, dir, err)
	}
	tb.Cleanup(func() {
		if err := unix.Unmount(dir, 0); err != nil {
			tb.Errorf("unmount the tmpfs on %s: %v", dir, err)
		}
	})
}
