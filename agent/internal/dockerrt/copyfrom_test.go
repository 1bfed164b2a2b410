package dockerrt

import (
	"bytes"
	"context"
	"io/fs"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestReadFile(t *testing.T) {
	rt := testNodeContainer(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sh := func(script string) {
		t.Helper()
		res, err := rt.Exec(ctx, "redis", "0", []string{"sh", "-c", script}, nil, &bytes.Buffer{})
		require.NoError(t, err)
		require.NoError(t, res.Err(script))
	}
	sh("mkdir -p /tmp/rf/sub && printf 'hello\\n' >/tmp/rf/sub/file && ln -s sub/file /tmp/rf/rel && ln -s /tmp/rf/rel /tmp/rf/abs && " +
		"ln -s loop /tmp/rf/loop && head -c 2048 /dev/zero >/tmp/rf/big")

	for _, p := range []string{"/tmp/rf/sub/file", "/tmp/rf/rel", "/tmp/rf/abs"} {
		got, err := rt.ReadFile(ctx, "redis", p, 1024)
		require.NoError(t, err, p)
		require.Equal(t, "hello\n", string(got), p)
	}
	for _, tt := range []struct{ path, err string }{
		{"/tmp/rf/missing", "read /tmp/rf/missing in container"},
		{"/tmp/rf/sub", "not a regular file"},
		{"/tmp/rf/big", "2048 bytes, more than the 1024 expected"},
		{"/tmp/rf/loop", "links"}, // the engine or ReadFile stops the loop
		{"tmp/rf/sub/file", "want an absolute path"},
	} {
		_, err := rt.ReadFile(ctx, "redis", tt.path, 1024)
		require.ErrorContains(t, err, tt.err, tt.path)
	}
	_, err := rt.ReadFile(ctx, "redis", "/tmp/rf/missing", 1024)
	require.ErrorIs(t, err, fs.ErrNotExist)
	_, err = rt.ReadFile(ctx, "api", "/etc/hostname", 1024)
	require.ErrorContains(t, err, `no container for service "api"`)
}
