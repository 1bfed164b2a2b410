package dockerrt

import (
	"archive/tar"
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestStopCopyToStart(t *testing.T) {
	rt := testNodeContainer(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	st, err := rt.State(ctx, "redis")
	require.NoError(t, err)
	require.True(t, st.Running(), "%+v", st)

	require.NoError(t, rt.Stop(ctx, "redis", 10*time.Second))
	require.NoError(t, rt.Stop(ctx, "redis", 10*time.Second), "stopping a stopped container is fine")
	st, err = rt.State(ctx, "redis")
	require.NoError(t, err)
	require.Equal(t, "exited", st.Status)

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	body := []byte("copied while stopped\n")
	require.NoError(t, tw.WriteHeader(&tar.Header{Name: "copied.txt", Mode: 0o600, Size: int64(len(body)), Uid: 0, Gid: 0, ModTime: time.Now()}))
	_, err = tw.Write(body)
	require.NoError(t, err)
	require.NoError(t, tw.Close())
	require.NoError(t, rt.CopyTo(ctx, "redis", "/tmp", &buf))

	require.NoError(t, rt.Start(ctx, "redis"))
	require.NoError(t, rt.Start(ctx, "redis"), "starting a running container is fine")
	var out bytes.Buffer
	res, err := rt.Exec(ctx, "redis", "root", []string{"cat", "/tmp/copied.txt"}, nil, &out)
	require.NoError(t, err)
	require.NoError(t, res.Err("cat"))
	require.Equal(t, string(body), out.String())

	require.ErrorContains(t, rt.Stop(ctx, "api", time.Second), `no container for service "api"`)
}
