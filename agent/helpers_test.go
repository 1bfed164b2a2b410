package agent

import (
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestRenewAt(t *testing.T) {
	nb := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	leaf := &x509.Certificate{NotBefore: nb, NotAfter: nb.Add(90 * time.Hour)}

	require.Equal(t, nb.Add(60*time.Hour), renewAt(leaf, func(int64) int64 { return 0 }), "two thirds of the lifetime")
	var asked int64
	early := renewAt(leaf, func(n int64) int64 { asked = n; return n - 1 })
	require.Equal(t, int64(3*time.Hour), asked, "jitter of up to a thirtieth of the lifetime")
	require.Equal(t, nb.Add(57*time.Hour+1), early, "jitter only moves renewal earlier")

	broken := &x509.Certificate{NotBefore: nb, NotAfter: nb}
	require.Equal(t, nb, renewAt(broken, func(int64) int64 { return 0 }), "a zero lifetime renews at once")
}

func TestIsRefused(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{nil, false},
		{errors.New("plain"), false},
		{status.Error(codes.Unauthenticated, "certificate retired"), true},
		{status.Error(codes.PermissionDenied, "node removed"), true},
		{fmt.Errorf("renew certificate: %w", status.Error(codes.PermissionDenied, "node removed")), true},
		// What grpc reports when the control plane rejects the client
		// certificate in the TLS 1.3 handshake (checked against a real
		// grpc server):
		{status.Error(codes.Unavailable, `connection error: desc = "error reading server preface: remote error: tls: bad certificate"`), true},
		{status.Error(codes.Unavailable, `connection error: desc = "error reading server preface: remote error: tls: unknown certificate authority"`), true},
		{status.Error(codes.Unavailable, `remote error: tls: access denied`), true},
		{status.Error(codes.Unavailable, `remote error: tls: handshake failure`), false},
		// Our own refusal of the server is no refusal of our identity.
		{status.Error(codes.Unavailable, `tls: failed to verify certificate: x509: certificate signed by unknown authority`), false},
		{status.Error(codes.Unavailable, "connection refused"), false},
		{status.Error(codes.InvalidArgument, "bad csr"), false},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, isRefused(tt.err), "%v", tt.err)
	}
}

func TestGoodbyeDelay(t *testing.T) {
	for range 100 {
		d := goodbyeDelay(10 * time.Second)
		require.GreaterOrEqual(t, d, 10*time.Second, "never earlier than asked")
		require.LessOrEqual(t, d, 11*time.Second)
	}
	require.LessOrEqual(t, goodbyeDelay(1000*time.Hour), maxGoodbyeDelay*11/10, "capped")
}

func TestJoinTokenSources(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "token")
	newAgent := func(token, tokenFile string) *Agent {
		a, err := New(Config{ControlPlane: "cp:1", Name: "n", JoinToken: token, JoinTokenFile: tokenFile, Logger: slog.New(slog.DiscardHandler)})
		require.NoError(t, err)
		return a
	}

	_, _, err := newAgent("", "").joinToken()
	require.ErrorIs(t, err, errNoJoinToken)

	tok, src, err := newAgent("direct", "").joinToken()
	require.NoError(t, err)
	require.Equal(t, "direct", tok)
	require.Equal(t, "--join-token or FORLOCK_JOIN_TOKEN", src)

	_, _, err = newAgent("", file).joinToken()
	require.ErrorIs(t, err, errNoJoinToken)
	require.ErrorContains(t, err, "no such file or directory")

	tok, _, err = newAgent("direct", file).joinToken()
	require.NoError(t, err)
	require.Equal(t, "direct", tok, "falls back while the file is missing")

	a := newAgent("direct", file)
	require.NoError(t, os.WriteFile(file, []byte("  from-file\n"), 0o600))
	tok, src, err = a.joinToken()
	require.NoError(t, err)
	require.Equal(t, "from-file", tok, "the file wins once it holds a token")
	require.Equal(t, "join token file "+file, src)

	require.NoError(t, os.WriteFile(file, []byte("fresh"), 0o600))
	tok, _, err = a.joinToken()
	require.NoError(t, err)
	require.Equal(t, "fresh", tok, "the file is read again at every attempt")
}

func TestReadTokenFile(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name, content, want, wantErr string
	}{
		{"plain", "abc", "abc", ""},
		{"trailing newline", "abc\n", "abc", ""},
		{"empty", " \n", "", "is empty"},
		{"two words", "abc def\n", "", "holds more than the token"},
		{"too large", strings.Repeat("a", maxTokenFileSize+1), "", "is larger than 4096 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(dir, tt.name)
			require.NoError(t, os.WriteFile(p, []byte(tt.content), 0o600))
			got, err := readTokenFile(p)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				require.NotContains(t, err.Error(), "abc", "errors never quote the token")
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

func TestTokenIDMatchesTheControlPlanesTokenID(t *testing.T) {
	// sha256("abc") = ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad
	require.Equal(t, "ba7816bf8f01", tokenID("abc"))
}

func TestLoadCAFile(t *testing.T) {
	caFile, _ := storeIdentity(t, t.TempDir(), time.Now(), time.Hour)
	pool, err := loadCAFile(caFile)
	require.NoError(t, err)
	require.NotNil(t, pool)

	_, err = loadCAFile(filepath.Join(t.TempDir(), "none"))
	require.ErrorContains(t, err, "fleet CA bundle (--ca-file): open ")
	bad := filepath.Join(t.TempDir(), "bad.pem")
	require.NoError(t, os.WriteFile(bad, []byte("nope"), 0o600))
	_, err = loadCAFile(bad)
	require.ErrorContains(t, err, "no PEM certificate found")
}
