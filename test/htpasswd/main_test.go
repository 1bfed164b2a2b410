package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"
)

func TestRun(t *testing.T) {
	var out bytes.Buffer
	require.NoError(t, run([]string{"forlock"}, strings.NewReader("s3cret\n"), &out))
	user, hash, ok := strings.Cut(strings.TrimSpace(out.String()), ":")
	require.True(t, ok)
	require.Equal(t, "forlock", user)
	require.NoError(t, bcrypt.CompareHashAndPassword([]byte(hash), []byte("s3cret")))

	for _, tc := range []struct {
		name, stdin string
		args        []string
	}{
		{"no user", "pw", nil},
		{"colon in user", "pw", []string{"a:b"}},
		{"empty password", "\n", []string{"u"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Error(t, run(tc.args, strings.NewReader(tc.stdin), &out))
		})
	}
}
