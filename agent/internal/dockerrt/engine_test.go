package dockerrt

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	"github.com/stretchr/testify/require"

	"github.com/forlock/fleet/test/testenv"
)

// testLabel marks every container and image the tests create.
const testLabel = "org.forlock.fleet.test"

// sleeperSrc is the only program of the test image: it sleeps until
// SIGTERM, burns CPU, exits with a code, or acts as a healthcheck probe.
const sleeperSrc = `package main

import (
	"os"
	"os/signal"
	"strconv"
	"syscall"
)

func main() {
	mode := "sleep"
	if len(os.Args) > 1 {
		mode = os.Args[1]
	}
	switch mode {
	case "probe-ok":
		return
	case "probe-fail":
		os.Exit(1)
	case "exit":
		code, _ := strconv.Atoi(os.Args[2])
		os.Exit(code)
	case "burn":
		go func() {
			for n := 0; ; n++ {
				_ = n * n
			}
		}()
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
}
`

// engine is a real Docker Engine for a test, with a fresh test image.
type testEngine struct {
	cli    *client.Client
	image  string
	prefix string
}

// newTestEngine connects to the local engine; without one the test fails
// saying what to start (skips under -short). It imports a one-file image holding a static sleeper
// binary (no registry is needed) and removes it and every container made
// through it when the test ends.
func newTestEngine(t *testing.T) *testEngine {
	t.Helper()
	testenv.RequireDocker(t)
	cli, err := client.New(client.FromEnv)
	require.NoError(t, err)
	t.Cleanup(func() { _ = cli.Close() })
	ctx := t.Context()
	_, err = cli.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true})
	require.NoError(t, err, "the Docker socket exists but the engine does not answer")

	id := randomID(t)
	e := &testEngine{cli: cli, image: "forlock-fleet-test/sleeper:" + id, prefix: "fltest-" + id}
	rootfs := buildRootfs(t)
	rc, err := cli.ImageImport(ctx, client.ImageImportSource{Source: bytes.NewReader(rootfs), SourceName: "-"}, e.image,
		client.ImageImportOptions{Changes: []string{`ENTRYPOINT ["/sleeper"]`, "LABEL " + testLabel + "=1"}})
	require.NoError(t, err)
	_, err = io.Copy(io.Discard, rc)
	require.NoError(t, err)
	require.NoError(t, rc.Close())
	t.Cleanup(func() {
		ctx := context.Background()
		list, err := cli.ContainerList(ctx, client.ContainerListOptions{All: true,
			Filters: make(client.Filters).Add("label", testLabel+"="+id)})
		if err == nil {
			for _, c := range list.Items {
				_, _ = cli.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true})
			}
		}
		_, _ = cli.ImageRemove(ctx, e.image, client.ImageRemoveOptions{Force: true})
	})
	return e
}

func randomID(t *testing.T) string {
	t.Helper()
	b := make([]byte, 4)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return hex.EncodeToString(b)
}

// buildRootfs builds the sleeper statically and returns a tar holding it
// as /sleeper.
func buildRootfs(t *testing.T) []byte {
	t.Helper()
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "main.go"), []byte(sleeperSrc), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module sleeper\n\ngo 1.22\n"), 0o600))
	cmd := exec.CommandContext(t.Context(), "go", "build", "-trimpath", "-ldflags=-s -w", "-o", "sleeper", ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOFLAGS=-mod=mod", "GOWORK=off")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "build sleeper: %s", out)
	bin, err := os.ReadFile(filepath.Join(dir, "sleeper"))
	require.NoError(t, err)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	require.NoError(t, tw.WriteHeader(&tar.Header{Name: "sleeper", Mode: 0o755, Size: int64(len(bin)), ModTime: time.Now()}))
	_, err = tw.Write(bin)
	require.NoError(t, err)
	require.NoError(t, tw.Close())
	return buf.Bytes()
}

// spec describes a test container.
type spec struct {
	name    string
	args    []string
	labels  map[string]string
	health  []string // healthcheck test, nil for none
	restart int      // on-failure retries, 0 for no restart policy
	memory  int64
	noStart bool
}

// run creates (and starts) a test container named prefix-name.
func (e *testEngine) run(t *testing.T, s spec) string {
	t.Helper()
	labels := map[string]string{testLabel: strings.TrimPrefix(e.prefix, "fltest-")}
	for k, v := range s.labels {
		labels[k] = v
	}
	cfg := &container.Config{Image: e.image, Cmd: s.args, Labels: labels}
	if s.health != nil {
		cfg.Healthcheck = &container.HealthConfig{Test: s.health, Interval: 100 * time.Millisecond,
			Timeout: 2 * time.Second, Retries: 1}
	}
	hc := &container.HostConfig{}
	hc.Memory = s.memory
	if s.restart > 0 {
		hc.RestartPolicy = container.RestartPolicy{Name: container.RestartPolicyOnFailure, MaximumRetryCount: s.restart}
	}
	name := e.prefix + "-" + s.name
	res, err := e.cli.ContainerCreate(t.Context(), client.ContainerCreateOptions{Name: name, Config: cfg, HostConfig: hc})
	require.NoError(t, err)
	if !s.noStart {
		_, err = e.cli.ContainerStart(t.Context(), res.ID, client.ContainerStartOptions{})
		require.NoError(t, err)
	}
	return name
}
