package dockerrt

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"os/exec"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/forlock/fleet/test/testenv"
)

// requireTestImage returns the Forlock test node's redis image (it has a
// shell). Without it the test fails naming the command that builds it.
func requireTestImage(t *testing.T) string {
	t.Helper()
	const img = "forlock-test/redis:latest"
	testenv.RequireImage(t, img)
	return img
}

// testNodeContainer runs a container from a Forlock test node image (they
// have a shell), named "<random>-redis", and returns a Runtime that knows it
// as the "redis" service. Without the image the test fails naming the fix.
func testNodeContainer(t *testing.T) *Runtime {
	t.Helper()
	img := requireTestImage(t)
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	name := "fl-exec-" + hex.EncodeToString(b) + "-redis"
	out, err := exec.Command("docker", "run", "-d", "--name", name, "--label", "org.forlock.test=dockerrt", img).CombinedOutput()
	require.NoError(t, err, "%s", out)
	t.Cleanup(func() { _ = exec.Command("docker", "rm", "-f", name).Run() })
	rt, err := New(Config{Names: []string{name}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = rt.Close() })
	return rt
}

func TestExecStreams(t *testing.T) {
	rt := testNodeContainer(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	in := make([]byte, 3<<20)
	_, _ = rand.Read(in)
	var out bytes.Buffer
	res, err := rt.Exec(ctx, "redis", "", []string{"cat"}, bytes.NewReader(in), &out)
	require.NoError(t, err)
	require.Zero(t, res.ExitCode)
	require.True(t, bytes.Equal(in, out.Bytes()), "stdin came back changed: %d bytes of %d", out.Len(), len(in))

	res, err = rt.Exec(ctx, "redis", "", []string{"sh", "-c", "echo partial; echo oops >&2; exit 3"}, nil, &out)
	require.NoError(t, err)
	require.Equal(t, 3, res.ExitCode)
	require.Equal(t, "oops\n", res.Stderr)
	require.ErrorContains(t, res.Err("test command"), "exited with status 3: oops")

	short, stop := context.WithTimeout(ctx, 500*time.Millisecond)
	defer stop()
	start := time.Now()
	_, err = rt.Exec(short, "redis", "", []string{"sleep", "30"}, nil, &out)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Less(t, time.Since(start), 10*time.Second, "cancel must cut the exec")

	_, err = rt.Exec(ctx, "api", "", []string{"true"}, nil, &out)
	require.ErrorContains(t, err, `no container for service "api"`)
}
