package agent

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/forlock/fleet/agent/internal/identity"
	"github.com/forlock/fleet/internal/pki"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const testNodeID = "0123456789abcdef0123456789abcdef"

// logBuffer collects log output safely across goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// waitFor waits until the log holds s.
func (b *logBuffer) waitFor(t *testing.T, s string) {
	t.Helper()
	require.Eventually(t, func() bool { return strings.Contains(b.String(), s) }, 10*time.Second, 5*time.Millisecond,
		"log never contained %q; log:\n%s", s, b)
}

// closedAddr returns a local address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}

// storeIdentity writes an identity issued at issuedAt for ttl into dir and
// returns the CA file that signed it.
func storeIdentity(t *testing.T, dir string, issuedAt time.Time, ttl time.Duration) (caFile string, id *identity.Identity) {
	t.Helper()
	ca, err := pki.NewCA(issuedAt.Add(-time.Hour), "test fleet")
	require.NoError(t, err)
	st, err := identity.Open(dir)
	require.NoError(t, err)
	key, _, err := st.LoadOrCreateKey()
	require.NoError(t, err)
	csrDER, err := pki.CreateCSR(key, "web-1")
	require.NoError(t, err)
	csr, err := pki.ParseCSR(csrDER)
	require.NoError(t, err)
	cert, err := ca.IssueNode(issuedAt, csr, pki.NodeID{ID: testNodeID, Epoch: 1}, ttl)
	require.NoError(t, err)
	id, err = identity.Build(testNodeID, "web-1", key, pki.EncodeCertPEM(cert.Raw), ca.CertPEM(), issuedAt)
	require.NoError(t, err)
	require.NoError(t, st.Save(id))
	caFile = filepath.Join(t.TempDir(), "ca.pem")
	require.NoError(t, os.WriteFile(caFile, ca.CertPEM(), 0o600))
	return caFile, id
}

// startAgent runs an agent with fast backoff and returns its log and a
// function that stops it and returns Run's error.
func startAgent(t *testing.T, cfg Config) (*Agent, *logBuffer, func() error) {
	t.Helper()
	logs := &logBuffer{}
	cfg.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg.MinBackoff, cfg.MaxBackoff = time.Millisecond, 20*time.Millisecond
	if cfg.Name == "" {
		cfg.Name = "web-1"
	}
	a, err := New(cfg)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	stop := sync.OnceValue(func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(10 * time.Second):
			t.Error("Run did not return within 10s of cancellation")
			return nil
		}
	})
	t.Cleanup(func() { _ = stop() })
	return a, logs, stop
}

func TestRunNeedsAWayToEnroll(t *testing.T) {
	dir := t.TempDir()
	a, err := New(Config{ControlPlane: "127.0.0.1:1", Name: "n", StateDir: dir, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	err = a.Run(context.Background())
	require.ErrorContains(t, err, "no node identity in "+dir+" and no join token to enroll with: pass --join-token-file")

	a, err = New(Config{ControlPlane: "127.0.0.1:1", Name: "n", StateDir: dir, JoinToken: "t", Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	require.ErrorContains(t, a.Run(context.Background()), "enrolling needs the fleet CA bundle to verify the control plane: pass --ca-file")

	fi, err := os.Stat(dir)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o700), fi.Mode().Perm(), "the state directory is restricted")
}

func TestRunRefusesDamagedState(t *testing.T) {
	dir := t.TempDir()
	storeIdentity(t, dir, time.Now(), time.Hour)
	require.NoError(t, os.WriteFile(filepath.Join(dir, identity.CertFile), []byte("garbage"), 0o600))
	a, err := New(Config{ControlPlane: "127.0.0.1:1", Name: "web-1", StateDir: dir, JoinToken: "t", Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	err = a.Run(context.Background())
	require.ErrorContains(t, err, "node.crt: no PEM certificate found")
	require.ErrorContains(t, err, "repair or move the damaged file")
	_, err = os.Stat(filepath.Join(dir, identity.KeyFile))
	require.NoError(t, err, "nothing is deleted")
}

func TestEnrollmentIsRetriedAndTheTokenFileReread(t *testing.T) {
	dir := t.TempDir()
	caFile, _ := storeIdentity(t, t.TempDir(), time.Now(), time.Hour) // only for a CA file
	tokenFile := filepath.Join(t.TempDir(), "token")
	a, logs, stop := startAgent(t, Config{
		ControlPlane: closedAddr(t), CAFile: caFile, JoinTokenFile: tokenFile, StateDir: dir,
	})
	logs.waitFor(t, `"msg":"cannot enroll","error":"no join token: join token file: open `+tokenFile)

	const secret = "s3cret-join-token"
	require.NoError(t, os.WriteFile(tokenFile, []byte(secret+"\n"), 0o600))
	logs.waitFor(t, `"msg":"enrollment failed","code":"Unavailable"`)
	logs.waitFor(t, `"token_id":"`+tokenID(secret)+`"`)
	logs.waitFor(t, `"token_source":"join token file `+tokenFile+`"`)

	require.NoError(t, stop(), "cancellation is a clean exit")
	require.NotContains(t, logs.String(), secret, "the join token is never logged")
	require.Equal(t, Stats{}, a.Stats())
	require.Empty(t, a.NodeID())

	fi, err := os.Stat(filepath.Join(dir, identity.KeyFile))
	require.NoError(t, err, "the key is generated on the host before enrolling")
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
}

func TestStoredIdentityIsUsedAndReconnectsForever(t *testing.T) {
	dir := t.TempDir()
	_, id := storeIdentity(t, dir, time.Now(), time.Hour)
	a, logs, stop := startAgent(t, Config{ControlPlane: closedAddr(t), StateDir: dir})
	logs.waitFor(t, `"msg":"loaded node identity"`)
	st := a.Stats()
	require.Equal(t, testNodeID, st.NodeID)
	require.Equal(t, testNodeID, a.NodeID())
	require.Equal(t, id.Serial(), st.CertSerial)
	require.Equal(t, id.Leaf().NotAfter, st.CertNotAfter)
	require.False(t, st.Connected)

	require.Eventually(t, func() bool { return strings.Count(logs.String(), `"msg":"control stream ended"`) >= 3 },
		10*time.Second, 5*time.Millisecond, "the agent keeps reconnecting")
	require.Contains(t, logs.String(), `code = Unavailable`)
	require.NoError(t, stop())
	require.Zero(t, a.Stats().Sessions)
}

func TestExpiredIdentityWithoutTokenAsksForOne(t *testing.T) {
	dir := t.TempDir()
	storeIdentity(t, dir, time.Now().Add(-3*time.Hour), time.Hour)
	_, logs, stop := startAgent(t, Config{ControlPlane: closedAddr(t), StateDir: dir, Name: "other-name"})
	logs.waitFor(t, `"msg":"the state directory holds the identity of another node name; keeping it"`)
	logs.waitFor(t, `"msg":"this node's certificate expired: give the agent a fresh join token (--join-token-file)"`)
	logs.waitFor(t, `"reason":"the node certificate expired at `)
	require.NoError(t, stop())
	require.NotContains(t, logs.String(), "control stream ended", "an expired certificate is not offered")
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, entries, 5, "the state directory is kept (identity files and tasks.db)")
}

func TestRunTwiceAtOnceIsRefused(t *testing.T) {
	dir := t.TempDir()
	storeIdentity(t, dir, time.Now(), time.Hour)
	a, logs, _ := startAgent(t, Config{ControlPlane: closedAddr(t), StateDir: dir})
	logs.waitFor(t, "loaded node identity")
	require.EqualError(t, a.Run(context.Background()), "agent is already running")
}
