package dockerrt

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"os/exec"
	"testing"
	"time"

	"github.com/moby/moby/client"
	"github.com/stretchr/testify/require"
)

// besideContainer runs a container from the Forlock test node's redis
// image, named "fl-beside-<random>-redis", with a fresh named volume at
// /data, and returns a Runtime that knows it as the "redis" service, and the
// container's name. Without the image the test fails naming the fix.
func besideContainer(t *testing.T) (*Runtime, string) {
	t.Helper()
	img := requireTestImage(t)
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	prefix := "fl-beside-" + hex.EncodeToString(b)
	name, vol := prefix+"-redis", prefix
	out, err := exec.Command("docker", "volume", "create", "--label", "org.forlock.test=dockerrt", vol).CombinedOutput()
	require.NoError(t, err, "%s", out)
	t.Cleanup(func() { _ = exec.Command("docker", "volume", "rm", "-f", vol).Run() })
	out, err = exec.Command("docker", "run", "-d", "--name", name, "--label", "org.forlock.test=dockerrt",
		"-v", vol+":/data", img).CombinedOutput()
	require.NoError(t, err, "%s", out)
	t.Cleanup(func() { // before the volume's removal: cleanups run last first
		_ = exec.Command("docker", "rm", "-f", name).Run()
	})
	rt, err := New(Config{Names: []string{name}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = rt.Close() })
	return rt, name
}

// requireNoHelpers fails if a helper container of the container cname is
// left, and removes it.
func requireNoHelpers(t *testing.T, rt *Runtime, cname string) {
	t.Helper()
	ctx := context.Background()
	list, err := rt.cli.ContainerList(ctx, client.ContainerListOptions{All: true,
		Filters: make(client.Filters).Add("label", helperLabel+"=true").Add("name", cname+"-forlock-helper-")})
	require.NoError(t, err)
	for _, c := range list.Items {
		_, _ = rt.cli.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true})
	}
	require.Empty(t, list.Items, "helper containers left behind")
}

func TestRunBeside(t *testing.T) {
	rt, cname := besideContainer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// As the image's user, with an argument, as a restore passes its data dir.
	res, err := rt.RunBeside(ctx, "redis", "", []string{"sh", "-c", `echo hi > "$1/x"`, "sh", "/data"})
	require.NoError(t, err)
	require.Equal(t, ExecResult{}, res)
	requireNoHelpers(t, rt, cname)
	res, err = rt.Exec(ctx, "redis", "", []string{"sh", "-c", `test "$(cat /data/x)" = hi`}, nil, io.Discard)
	require.NoError(t, err)
	require.Zero(t, res.ExitCode, "the file written beside is not in the service's volume")

	// As another user, without network.
	res, err = rt.RunBeside(ctx, "redis", "root", []string{"sh", "-c",
		`test "$(id -u)" = 0 || { echo "uid $(id -u)" >&2; exit 1; }; ls /sys/class/net | grep -vx lo && exit 2; exit 0`})
	require.NoError(t, err)
	require.Equal(t, ExecResult{}, res)

	res, err = rt.RunBeside(ctx, "redis", "", []string{"sh", "-c", "echo out; echo boom >&2; exit 3"})
	require.NoError(t, err)
	require.Equal(t, 3, res.ExitCode)
	require.Equal(t, "boom\n", res.Stderr)
	requireNoHelpers(t, rt, cname)

	_, err = rt.RunBeside(ctx, "redis", "", []string{"/no/such/program"})
	require.ErrorContains(t, err, "run helper in container "+cname+": start "+cname+"-forlock-helper-")
	requireNoHelpers(t, rt, cname)

	_, err = rt.RunBeside(ctx, "api", "", []string{"true"})
	require.ErrorContains(t, err, `no container for service "api"`)
}

func TestRunBesideStopped(t *testing.T) {
	rt, cname := besideContainer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.Command("docker", "stop", "-t", "5", cname).CombinedOutput()
	require.NoError(t, err, "%s", out)

	res, err := rt.RunBeside(ctx, "redis", "", []string{"sh", "-c", "echo hi > /data/x"})
	require.NoError(t, err)
	require.Equal(t, ExecResult{}, res)
	res, err = rt.RunBeside(ctx, "redis", "", []string{"sh", "-c", `test "$(cat /data/x)" = hi`})
	require.NoError(t, err)
	require.Equal(t, ExecResult{}, res)
	requireNoHelpers(t, rt, cname)

	state, err := rt.InspectContainer(ctx, cname)
	require.NoError(t, err)
	require.False(t, state.State.Running, "the helper must not start the service's container")
}

func TestRunBesideCancel(t *testing.T) {
	rt, cname := besideContainer(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	time.AfterFunc(200*time.Millisecond, cancel)

	start := time.Now()
	_, err := rt.RunBeside(ctx, "redis", "", []string{"sleep", "60"})
	require.ErrorIs(t, err, context.Canceled)
	require.Less(t, time.Since(start), 20*time.Second, "cancel must kill the helper")
	requireNoHelpers(t, rt, cname)
}

// TestScratchHasNoHealthcheck: a scratch container does not run its
// image's healthcheck (the test redis image has one), whose timed-out
// probes a scratch server would reap as crashed children of its own.
func TestScratchHasNoHealthcheck(t *testing.T) {
	rt, _ := besideContainer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := rt.StartScratch(ctx, ScratchConfig{Service: "redis", Cmd: []string{"sleep", "600"}})
	require.NoError(t, err)
	defer func() { require.NoError(t, s.Remove(ctx)) }()
	ins, err := rt.cli.ContainerInspect(ctx, s.ID, client.ContainerInspectOptions{})
	require.NoError(t, err)
	require.NotNil(t, ins.Container.Config.Healthcheck)
	require.Equal(t, []string{"NONE"}, ins.Container.Config.Healthcheck.Test)
	require.Nil(t, ins.Container.State.Health, "no health state: no probe runs")
}
