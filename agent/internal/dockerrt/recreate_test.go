package dockerrt

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestRegistryHost(t *testing.T) {
	for ref, want := range map[string]string{
		"127.0.0.1:5000/forlock/api:v1":        "127.0.0.1:5000",
		"registry.example.com/forlock/api@sha": "registry.example.com",
		"localhost/api:v1":                     "localhost",
		"forlock-test/api:latest":              "docker.io",
		"postgres:15":                          "docker.io",
	} {
		require.Equal(t, want, RegistryHost(ref), ref)
	}
}

func TestNotFound(t *testing.T) {
	e := newTestEngine(t)
	rt, err := New(Config{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = rt.Close() })

	_, err = rt.InspectContainer(t.Context(), e.prefix+"-missing")
	require.True(t, IsNotFound(err), "%v", err)
	_, err = rt.InspectImage(t.Context(), e.prefix+"-missing:v1")
	require.True(t, IsNotFound(err), "%v", err)
	_, err = rt.InspectImage(t.Context(), e.image)
	require.NoError(t, err)
	require.False(t, IsNotFound(nil))
}
