package identity

import (
	"crypto/ecdsa"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/forlock/fleet/internal/pki"
)

const testNodeID = "0123456789abcdef0123456789abcdef"

// issue returns a chain and CA bundle for key, as the control plane would.
func issue(t *testing.T, ca *pki.CA, key *ecdsa.PrivateKey, nodeID string, now time.Time) (chainPEM, caPEM []byte) {
	t.Helper()
	csrDER, err := pki.CreateCSR(key, "ignored")
	require.NoError(t, err)
	csr, err := pki.ParseCSR(csrDER)
	require.NoError(t, err)
	cert, err := ca.IssueNode(now, csr, pki.NodeID{ID: nodeID, Epoch: 1}, time.Hour)
	require.NoError(t, err)
	return pki.EncodeCertPEM(cert.Raw), ca.CertPEM()
}

func newCA(t *testing.T) *pki.CA {
	t.Helper()
	ca, err := pki.NewCA(time.Now(), "test fleet")
	require.NoError(t, err)
	return ca
}

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	require.NoError(t, err)
	return fi.Mode().Perm()
}

func TestOpenCreatesAndTightensDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "state")
	_, err := Open(dir)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o700), mode(t, dir))

	loose := filepath.Join(t.TempDir(), "loose")
	require.NoError(t, os.Mkdir(loose, 0o755))
	_, err = Open(loose)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o700), mode(t, loose))

	file := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(file, nil, 0o600))
	_, err = Open(file)
	require.Error(t, err)

	_, err = Open("")
	require.EqualError(t, err, "state directory is not set")
}

func TestKeyIsCreatedOnceWithMode0600(t *testing.T) {
	s, err := Open(t.TempDir())
	require.NoError(t, err)

	_, err = s.LoadKey()
	require.ErrorIs(t, err, ErrNotFound)

	k1, created, err := s.LoadOrCreateKey()
	require.NoError(t, err)
	require.True(t, created)
	require.Equal(t, os.FileMode(0o600), mode(t, filepath.Join(s.Dir(), KeyFile)))
	raw, err := os.ReadFile(filepath.Join(s.Dir(), KeyFile))
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(string(raw), "-----BEGIN PRIVATE KEY-----"), "PKCS#8 PEM")

	k2, created, err := s.LoadOrCreateKey()
	require.NoError(t, err)
	require.False(t, created)
	require.True(t, k1.Equal(k2))
}

func TestSaveLoadRoundTrip(t *testing.T) {
	s, err := Open(t.TempDir())
	require.NoError(t, err)
	_, err = s.Load()
	require.ErrorIs(t, err, ErrNotFound)

	key, _, err := s.LoadOrCreateKey()
	require.NoError(t, err)
	_, err = s.Load()
	require.ErrorIs(t, err, ErrNotFound, "a key alone is no identity")

	now := time.Now()
	chainPEM, caPEM := issue(t, newCA(t), key, testNodeID, now)
	id, err := Build(testNodeID, "web-1", key, chainPEM, caPEM, now)
	require.NoError(t, err)
	require.NoError(t, s.Save(id))

	for _, f := range []string{KeyFile, CertFile, CAFile, NodeFile} {
		require.Equal(t, os.FileMode(0o600), mode(t, filepath.Join(s.Dir(), f)), f)
	}
	entries, err := os.ReadDir(s.Dir())
	require.NoError(t, err)
	require.Len(t, entries, 4, "no temporary files are left behind")

	got, err := s.Load()
	require.NoError(t, err)
	require.Equal(t, testNodeID, got.NodeID)
	require.Equal(t, "web-1", got.Name)
	require.Equal(t, id.Serial(), got.Serial())
	require.True(t, got.Key.Equal(key))
	require.False(t, got.Expired(now))
	require.True(t, got.Expired(now.Add(2*time.Hour)))
	tc := got.TLSCertificate()
	require.Len(t, tc.Certificate, 1)
	require.Same(t, got.Leaf(), tc.Leaf)
}

func TestLoadRejectsDamagedState(t *testing.T) {
	ca := newCA(t)
	tests := []struct {
		name    string
		damage  func(t *testing.T, dir string)
		wantErr string
	}{
		{"bad node.json", func(t *testing.T, dir string) {
			t.Helper()
			require.NoError(t, os.WriteFile(filepath.Join(dir, NodeFile), []byte("{"), 0o600))
		}, "node.json"},
		{"unknown node.json field", func(t *testing.T, dir string) {
			t.Helper()
			require.NoError(t, os.WriteFile(filepath.Join(dir, NodeFile), []byte(`{"node_id":"`+testNodeID+`","x":1}`), 0o600))
		}, "unknown field"},
		{"bad node id", func(t *testing.T, dir string) {
			t.Helper()
			require.NoError(t, os.WriteFile(filepath.Join(dir, NodeFile), []byte(`{"node_id":"nope"}`), 0o600))
		}, "node_id \"nope\" is malformed"},
		{"bad cert", func(t *testing.T, dir string) {
			t.Helper()
			require.NoError(t, os.WriteFile(filepath.Join(dir, CertFile), []byte("junk"), 0o600))
		}, "node.crt: no PEM certificate found"},
		{"bad key", func(t *testing.T, dir string) {
			t.Helper()
			require.NoError(t, os.WriteFile(filepath.Join(dir, KeyFile), []byte("junk"), 0o600))
		}, "no PEM block found"},
		{"key of another host", func(t *testing.T, dir string) {
			t.Helper()
			other, err := pki.GenerateKey()
			require.NoError(t, err)
			p, err := pki.EncodeKeyPEM(other)
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(filepath.Join(dir, KeyFile), p, 0o600))
		}, "node.crt does not match node.key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Open(t.TempDir())
			require.NoError(t, err)
			key, _, err := s.LoadOrCreateKey()
			require.NoError(t, err)
			chainPEM, caPEM := issue(t, ca, key, testNodeID, time.Now())
			id, err := Build(testNodeID, "n", key, chainPEM, caPEM, time.Now())
			require.NoError(t, err)
			require.NoError(t, s.Save(id))

			tt.damage(t, s.Dir())
			_, err = s.Load()
			require.ErrorContains(t, err, tt.wantErr)
			require.NotErrorIs(t, err, ErrNotFound, "damage needs an operator, not a silent re-enrollment")
		})
	}
}

func TestBuildChecksWhatTheControlPlaneSent(t *testing.T) {
	ca := newCA(t)
	key, err := pki.GenerateKey()
	require.NoError(t, err)
	now := time.Now()
	chainPEM, caPEM := issue(t, ca, key, testNodeID, now)
	otherKey, err := pki.GenerateKey()
	require.NoError(t, err)
	otherCA := newCA(t)

	tests := []struct {
		name     string
		nodeID   string
		key      *ecdsa.PrivateKey
		chainPEM []byte
		caPEM    []byte
		now      time.Time
		wantErr  string
	}{
		{"ok", testNodeID, key, chainPEM, caPEM, now, ""},
		{"malformed node id", "x", key, chainPEM, caPEM, now, `node_id "x" is malformed`},
		{"other node id", "ffffffffffffffffffffffffffffffff", key, chainPEM, caPEM, now, "certificate names node " + testNodeID},
		{"other key", testNodeID, otherKey, chainPEM, caPEM, now, "node.crt does not match node.key"},
		{"no chain", testNodeID, key, nil, caPEM, now, "node.crt: no PEM certificate found"},
		{"no ca", testNodeID, key, chainPEM, []byte("x"), now, "ca.pem: no PEM certificate found"},
		{"other ca", testNodeID, key, chainPEM, otherCA.CertPEM(), now, "does not verify against the fleet CA"},
		{"expired", testNodeID, key, chainPEM, caPEM, now.Add(2 * time.Hour), "is the host clock right?"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := Build(tt.nodeID, "n", tt.key, tt.chainPEM, tt.caPEM, tt.now)
			if tt.wantErr == "" {
				require.NoError(t, err)
				require.Equal(t, x509.ExtKeyUsageClientAuth, id.Leaf().ExtKeyUsage[0])
				return
			}
			require.ErrorContains(t, err, tt.wantErr)
		})
	}
}
