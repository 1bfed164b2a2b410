package main

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestLogin(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct {
		name, body string
		code       int
	}{
		{"right password", `{"email":"Admin@forlock.test","password":"forlock-test-login"}`, http.StatusOK},
		{"wrong password", `{"email":"admin@forlock.test","password":"nope"}`, http.StatusUnauthorized},
		{"unknown user", `{"email":"eve@forlock.test","password":"forlock-test-login"}`, http.StatusUnauthorized},
		{"empty password", `{"email":"admin@forlock.test","password":""}`, http.StatusUnauthorized},
		{"no email", `{"password":"x"}`, http.StatusBadRequest},
		{"not json", `email=a`, http.StatusBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, m := f.do(t, http.MethodPost, LoginPath, tc.body)
			require.Equal(t, tc.code, code, m)
			switch code {
			case http.StatusOK:
				assert.Equal(t, "admin@forlock.test", m["user"])
				tok, _ := m["token"].(string)
				require.Len(t, tok, 48)
				c, got := f.do(t, http.MethodGet, "/api/v1/sessions/"+tok, "")
				require.Equal(t, http.StatusOK, c)
				assert.Equal(t, "admin@forlock.test", got["user"])
			case http.StatusUnauthorized:
				// One answer for both, so it does not tell which addresses exist.
				assert.Equal(t, "wrong email or password", m["error"])
			}
		})
	}
	// The request log has the 401 with the client's address, never the password.
	logs := f.logs.String()
	assert.Contains(t, logs, `"status":401`)
	assert.Contains(t, logs, `"path":"/api/v1/auth/login"`)
	assert.NotContains(t, logs, "forlock-test-login")
}

func TestParseUsers(t *testing.T) {
	u, err := ParseUsers("a@x:1, B@x:two:colons")
	require.NoError(t, err)
	assert.True(t, u.check("a@x", "1"))
	assert.True(t, u.check("b@X", "two:colons"))
	assert.False(t, u.check("a@x", "2"))
	assert.False(t, u.check("c@x", ""))
	for _, bad := range []string{"", "a@x", "a@x:", ":pw", "a@x:1,"} {
		_, err := ParseUsers(bad)
		require.Error(t, err, bad)
		assert.Contains(t, err.Error(), "FORLOCK_API_USERS")
	}
}
