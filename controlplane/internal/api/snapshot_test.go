package api

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"

	"github.com/forlock/fleet/controlplane/internal/snapshot"
	"github.com/forlock/fleet/controlplane/internal/store"
	"github.com/forlock/fleet/internal/artifact"
	"github.com/forlock/fleet/internal/keys"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

const testPassphrase = "correct horse battery staple"

// snapshotServer is a test server whose SaveSnapshot copies its store and a
// data dir holding key files with recognisable secrets.
func snapshotServer(t *testing.T) (*testServer, map[string]string) {
	t.Helper()
	dir := t.TempDir()
	secrets := map[string]string{
		"ca.key":          "-----BEGIN EC PRIVATE KEY-----\nCA-KEY-SECRET-4f1d9a\n-----END EC PRIVATE KEY-----\n",
		"server.key":      "-----BEGIN EC PRIVATE KEY-----\nSERVER-KEY-SECRET-77b2\n-----END EC PRIVATE KEY-----\n",
		"backup-kek.json": `{"version":1,"key_id":"local:00000000","key":"KEK-SECRET-c0ffee"}`,
		"audit.key":       "AUDIT-KEY-SECRET-9e3a",
	}
	for name, v := range secrets {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(v), 0o600))
	}
	require.NoError(t, os.WriteFile(filepath.Join(dir, "ca.crt"), []byte("CA-CERT\n"), 0o644))
	var saver *snapshot.Saver
	s := newTestServer(t, serverOptions{services: func(svc *Services) {
		svc.ControlPlane.Snapshots = &lazySaver{get: func() *snapshot.Saver { return saver }}
		svc.ControlPlane.Audit = svc.Backups.Store.(AuditStore)
	}})
	var err error
	saver, err = snapshot.NewSaver(snapshot.Config{DataDir: dir, DB: s.st, Name: "controlplane"})
	require.NoError(t, err)
	return s, secrets
}

// lazySaver lets the test build the saver on the server's store after the
// server was made.
type lazySaver struct{ get func() *snapshot.Saver }

func (l *lazySaver) Wrapper(ctx context.Context, enc snapshot.Encryption) (keys.Wrapper, error) {
	return l.get().Wrapper(ctx, enc)
}

func (l *lazySaver) Spool(ctx context.Context, w keys.Wrapper) (*os.File, snapshot.Result, error) {
	return l.get().Spool(ctx, w)
}

// saveSnapshot calls SaveSnapshot and returns the file's bytes and the last
// message.
func saveSnapshot(ctx context.Context, c forlockv1.ControlPlaneServiceClient, pass string) ([]byte, *forlockv1.SaveSnapshotResponse, error) {
	stream, err := c.SaveSnapshot(ctx, &forlockv1.SaveSnapshotRequest{Passphrase: pass})
	if err != nil {
		return nil, nil, err
	}
	var buf bytes.Buffer
	var last *forlockv1.SaveSnapshotResponse
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return buf.Bytes(), last, nil
		}
		if err != nil {
			return nil, nil, err
		}
		buf.Write(msg.GetChunk())
		if msg.GetDone() {
			last = msg
		}
	}
}

// TestSaveSnapshot: an admin gets a valid encrypted artifact of kind
// snapshot that restores into a database holding the fleet's nodes; the
// call is audited with its encryption and without the passphrase.
func TestSaveSnapshot(t *testing.T) {
	s, _ := snapshotServer(t)
	nodeID := s.enroll("web1", nil)

	raw, last, err := saveSnapshot(s.ctx(), s.Status, testPassphrase)
	require.NoError(t, err)
	require.NotNil(t, last)
	require.EqualValues(t, len(raw), last.GetSize())
	h, err := artifact.Verify(bytes.NewReader(raw), last.GetSha256(), artifact.UnwrapWith(t.Context(), keys.OpenPassphrase([]byte(testPassphrase))))
	require.NoError(t, err)
	require.Equal(t, artifact.KindSnapshot, h.Kind)
	require.True(t, strings.HasPrefix(h.KeyID, keys.PassphraseKeyIDPrefix), h.KeyID)

	file := filepath.Join(t.TempDir(), "cp.snap")
	require.NoError(t, os.WriteFile(file, raw, 0o600))
	target := filepath.Join(t.TempDir(), "restored")
	_, err = snapshot.Restore(t.Context(), snapshot.RestoreOptions{File: file, DataDir: target,
		Keys: snapshot.Keys{Passphrase: func() (keys.Wrapper, error) { return keys.OpenPassphrase([]byte(testPassphrase)), nil }}})
	require.NoError(t, err)
	st, err := store.Open(filepath.Join(target, snapshot.DBName))
	require.NoError(t, err)
	nodes, err := st.Nodes()
	require.NoError(t, err)
	require.Len(t, nodes, 1)
	require.Equal(t, nodeID, nodes[0].ID)
	require.Equal(t, "web1", nodes[0].Name)
	require.NoError(t, st.Close())

	recs := s.audit("SaveSnapshot")
	require.Len(t, recs, 1)
	require.Equal(t, "OK", recs[0].GetResult())
	require.Contains(t, recs[0].GetSummary(), "encryption=passphrase")
	require.Contains(t, recs[0].GetSummary(), "sha256="+last.GetSha256(), "the record names the file it handed out")
	require.NotContains(t, recs[0].String(), testPassphrase)
	require.NotContains(t, s.logs.String(), testPassphrase)
}

// TestSaveSnapshotAdminOnly: viewers and operators are refused (and the
// refusal audited); a short passphrase is refused before anything is read.
func TestSaveSnapshotAdminOnly(t *testing.T) {
	s, _ := snapshotServer(t)
	acc := forlockv1.NewAccessServiceClient(s.conn)
	for _, role := range []string{"viewer", "operator"} {
		created, err := acc.CreateIdentity(s.ctx(), &forlockv1.CreateIdentityRequest{Name: "who-" + role, Role: role})
		require.NoError(t, err)
		_, _, err = saveSnapshot(s.as(created.GetSecret()), s.Status, testPassphrase)
		requireStatus(t, err, codes.PermissionDenied, "controlplane.snapshot", "")
	}
	denied := s.audit("SaveSnapshot")
	require.Len(t, denied, 2)
	for _, r := range denied {
		require.Equal(t, "PermissionDenied", r.GetResult())
	}

	_, _, err := saveSnapshot(s.ctx(), s.Status, "short")
	requireStatus(t, err, codes.InvalidArgument, "passphrase too short", "")
}

// TestSnapshotHoldsNoSecretInClear: the key files' secrets, the node's
// records and the passphrase are absent from the snapshot's raw bytes, and
// present in its decrypted plaintext (so the check can fail).
func TestSnapshotHoldsNoSecretInClear(t *testing.T) {
	s, secrets := snapshotServer(t)
	s.enroll("secret-node-name-42", nil)
	raw, last, err := saveSnapshot(s.ctx(), s.Status, testPassphrase)
	require.NoError(t, err)
	var plain bytes.Buffer
	_, err = artifact.VerifyTo(&plain, bytes.NewReader(raw), last.GetSha256(), artifact.UnwrapWith(t.Context(), keys.OpenPassphrase([]byte(testPassphrase))))
	require.NoError(t, err)
	for name, secret := range secrets {
		require.NotContains(t, string(raw), secret, "%s in clear in the snapshot", name)
		require.Contains(t, plain.String(), secret, "%s missing from the plaintext", name)
	}
	require.NotContains(t, string(raw), "secret-node-name-42")
	require.Contains(t, plain.String(), "secret-node-name-42")
	require.NotContains(t, string(raw), testPassphrase)
}
