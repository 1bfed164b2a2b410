package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestGeneratorDeterministicAndRealistic(t *testing.T) {
	a, b := NewGenerator(7, 20), NewGenerator(7, 20)
	require.Len(t, a.owners, 20)
	seen := map[string]bool{}
	for _, o := range a.owners {
		assert.False(t, seen[o], "owner %s twice", o)
		seen[o] = true
		assert.Contains(t, o, "@example.")
	}
	var total int
	for range 200 {
		x, y := a.Item(), b.Item()
		assert.Equal(t, x, y)
		assert.True(t, seen[x.Owner])
		assert.NotEmpty(t, x.Name)
		// 12-byte nonce + JSON + 16-byte GCM tag.
		assert.Greater(t, len(x.Ciphertext), 12+16+40)
		assert.Less(t, len(x.Ciphertext), 5000)
		assert.NotContains(t, string(x.Ciphertext), "password", "ciphertext must not show the plaintext")
		total += len(x.Ciphertext)
	}
	avg := total / 200
	assert.Greater(t, avg, 1000)
	assert.Less(t, avg, 3000)

	// The ciphertext opens with the generator's key and the owner as AAD.
	it := NewGenerator(7, 20).Item()
	n := a.aead.NonceSize()
	plain, err := NewGenerator(7, 20).aead.Open(nil, it.Ciphertext[:n], it.Ciphertext[n:], []byte(it.Owner))
	require.NoError(t, err)
	var secret map[string]any
	require.NoError(t, json.Unmarshal(plain, &secret))
	assert.Contains(t, secret, "password")
}

func TestSessions(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	s1 := NewSession("bob@example.com", "10.0.0.1", "curl", now)
	s2 := NewSession("bob@example.com", "10.0.0.1", "curl", now)
	assert.NotEqual(t, s1.Token, s2.Token)
	assert.Equal(t, now.Add(SessionTTL), s1.ExpiresAt)

	g := NewGenerator(1, 5)
	s := g.Session(now)
	assert.Len(t, s.Token, 48)
	assert.True(t, strings.HasPrefix(s.IP, "10."))
	assert.NotEmpty(t, s.UserAgent)
}
