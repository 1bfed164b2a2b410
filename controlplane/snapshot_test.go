package controlplane

import (
	"bytes"
	"crypto/x509"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/forlock/fleet/controlplane/internal/snapshot"
	"github.com/forlock/fleet/internal/keys"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

const drPassphrase = "the snapshot passphrase of the test"

// saveSnapshotTo saves the control plane's snapshot to a file through the
// API, as forlockctl does.
func (e *env) saveSnapshotTo(file string) {
	e.t.Helper()
	stream, err := forlockv1.NewControlPlaneServiceClient(e.dial(nil)).SaveSnapshot(e.admin(), &forlockv1.SaveSnapshotRequest{Passphrase: drPassphrase})
	require.NoError(e.t, err)
	f, err := os.OpenFile(file, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	require.NoError(e.t, err)
	defer func() { require.NoError(e.t, f.Close()) }()
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return
		}
		require.NoError(e.t, err)
		_, err = f.Write(msg.GetChunk())
		require.NoError(e.t, err)
	}
}

// TestRestoreAdoptsCertificatesIssuedAfterTheSnapshot is control-plane DR
// in process: snapshot, changes the snapshot misses, the data dir wiped,
// restore, start. Agents get back in with the certificates they hold: a
// renewal after the snapshot and a re-enrollment with the node's own key
// are adopted; another key, a lower epoch, a removed node stay refused; a
// node enrolled after the snapshot is refused, told what to do and listed.
func TestRestoreAdoptsCertificatesIssuedAfterTheSnapshot(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cp")
	e := startEnvIn(t, dir, nil)
	tok := e.token(10, time.Hour, nil)
	renewed := e.mustEnroll(tok, "renewed")   // renews after the snapshot
	same := e.mustEnroll(tok, "same")         // does nothing after it
	reenr := e.mustEnroll(tok, "reenrolled")  // enrolls again, its own key, after it
	thief := e.mustEnroll(tok, "stolen-name") // a --for-node enrollment with another key after it
	removed := e.mustEnroll(tok, "removed")   // removed before it
	_, err := e.nodes.RemoveNode(e.admin(), &forlockv1.RemoveNodeRequest{Node: "removed"})
	require.NoError(t, err)
	// Certificates carry their time in whole seconds: a certificate issued
	// within a second of the snapshot could be from either side.
	time.Sleep(1100 * time.Millisecond)

	file := filepath.Join(t.TempDir(), "cp.snap")
	e.saveSnapshotTo(file)
	time.Sleep(1100 * time.Millisecond)

	renewedCert, err := renewFrom(t, e, renewed.tlsCrt)
	require.NoError(t, err)
	f1, err := e.forNodeToken("reenrolled")
	require.NoError(t, err)
	reenr2, err := e.enrollWith(f1, "reenrolled", reenr.key)
	require.NoError(t, err)
	f2, err := e.forNodeToken("stolen-name")
	require.NoError(t, err)
	other, err := e.enroll(f2, "stolen-name")
	require.NoError(t, err)
	late := e.mustEnroll(tok, "late")
	e.stop()

	require.NoError(t, os.RemoveAll(dir))
	res, err := restoreSnapshot(t.Context(), file, dir,
		snapshot.Keys{Passphrase: func() (keys.Wrapper, error) { return keys.OpenPassphrase([]byte(drPassphrase)), nil }}, false, time.Now())
	require.NoError(t, err)
	require.Empty(t, res.Aside)

	e = startEnvIn(t, dir, nil)
	ok := func(cert *identity, name string) {
		t.Helper()
		s, err := e.tryConnect(cert.tlsCrt)
		require.NoError(t, err)
		msg, err := s.Recv()
		require.NoError(t, err, "%s", name)
		require.NotNil(t, msg.GetHello(), name)
	}
	ok(&identity{tlsCrt: renewedCert}, "renewed after the snapshot")
	refusedConnect(t, e, renewed.tlsCrt, "superseded") // adopting the renewal retired the one before
	ok(same, "unchanged since the snapshot")
	ok(reenr2, "re-enrolled with its own key after the snapshot")
	refusedConnect(t, e, reenr.tlsCrt, "retired identity") // lower epoch than the adopted one
	refusedConnect(t, e, other.tlsCrt, "not the node's registered key")
	ok(thief, "the recorded certificate of stolen-name")
	refusedConnect(t, e, removed.tlsCrt, "not registered")
	refusedConnect(t, e, late.tlsCrt, "enrolled after the control-plane snapshot")
	refusedConnect(t, e, late.tlsCrt, "give it a new join token and delete its state dir")

	st, err := forlockv1.NewControlPlaneServiceClient(e.dial(nil)).GetStatus(e.admin(), &forlockv1.GetStatusRequest{})
	require.NoError(t, err)
	rf := st.GetRestoredFrom()
	require.NotNil(t, rf)
	require.Len(t, rf.GetLostNodes(), 1, "listed once however often it knocks")
	require.Equal(t, late.resp.GetNodeId(), rf.GetLostNodes()[0].GetNodeId())
	leaf, err := x509.ParseCertificate(renewedCert.Certificate[0])
	require.NoError(t, err)
	require.Equal(t, leaf.SerialNumber.Text(16), e.node("renewed").GetCertificateSerial(), "the adopted certificate is the node's live one")
}

// TestRestoreCommand: forlock-controlplane snapshot restore with a
// passphrase file of the wrong mode is a usage error; with a wrong
// passphrase it says so and leaves the data dir as it was.
func TestRestoreCommand(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cp")
	e := startEnvIn(t, dir, nil)
	file := filepath.Join(t.TempDir(), "cp.snap")
	e.saveSnapshotTo(file)
	e.stop()

	passFile := filepath.Join(t.TempDir(), "pass")
	require.NoError(t, os.WriteFile(passFile, []byte(drPassphrase+"\n"), 0o644))
	target := filepath.Join(t.TempDir(), "new")
	var out, errOut bytes.Buffer
	code := run(t.Context(), []string{"snapshot", "restore", file, "--data-dir", target, "--passphrase-file", passFile}, &out, &errOut, func(string) string { return "" })
	require.Equal(t, 2, code, errOut.String())
	require.Contains(t, errOut.String(), "chmod 600")

	require.NoError(t, os.Chmod(passFile, 0o600))
	wrong := filepath.Join(t.TempDir(), "wrong")
	require.NoError(t, os.WriteFile(wrong, []byte("not the passphrase, long enough"), 0o600))
	code = run(t.Context(), []string{"snapshot", "restore", file, "--data-dir", dir, "--passphrase-file", wrong, "--force"}, &out, &errOut, func(string) string { return "" })
	require.Equal(t, 1, code)
	require.Contains(t, errOut.String(), "wrong passphrase")
	_, err := os.Stat(filepath.Join(dir, dbFile))
	require.NoError(t, err, "the data dir is untouched")

	code = run(t.Context(), []string{"snapshot", "restore", file, "--data-dir", target, "--passphrase-file", passFile}, &out, &errOut, func(string) string { return "" })
	require.Equal(t, 0, code, errOut.String())
	require.Contains(t, out.String(), "restored the control plane from the snapshot taken at")
}

// namedKey is a passphrase key that calls itself a Vault Transit key: the
// restore goes by the key ID, and these tests need no Vault.
type namedKey struct{ keys.Wrapper }

func (namedKey) KeyID() string { return "vault-transit:cp-snapshot:v1" }

// TestRestoreCommandTransitSnapshot: a snapshot whose key ID names a Vault
// Transit key needs the Vault settings (the usage error says which, and the
// key ID), and with a Vault that does not answer the restore says so; both
// write nothing.
func TestRestoreCommandTransitSnapshot(t *testing.T) {
	dir := t.TempDir()
	s, err := snapshot.NewSaver(snapshot.Config{DataDir: dir, DB: noDB{}, Name: "controlplane"})
	require.NoError(t, err)
	w, err := keys.NewPassphrase([]byte(drPassphrase))
	require.NoError(t, err)
	f, _, err := s.Spool(t.Context(), namedKey{w})
	require.NoError(t, err)
	raw, err := io.ReadAll(f)
	require.NoError(t, err)
	require.NoError(t, f.Close())
	file := filepath.Join(t.TempDir(), "transit.snap")
	require.NoError(t, os.WriteFile(file, raw, 0o600))
	passFile := filepath.Join(t.TempDir(), "pass")
	require.NoError(t, os.WriteFile(passFile, []byte(drPassphrase), 0o600))
	tokenFile := filepath.Join(t.TempDir(), "token")
	require.NoError(t, os.WriteFile(tokenFile, []byte("hvs.not-a-real-token"), 0o600))

	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		code int
		want []string
	}{
		{"no key at all", nil, nil, 2, []string{"give --data-dir, and --passphrase-file or the Vault settings"}},
		{"a passphrase", []string{"--passphrase-file", passFile}, nil, 2,
			[]string{"encrypted to a Vault Transit key", "vault-transit:cp-snapshot:v1", "--vault-address"}},
		{"Vault down, by flags", []string{"--vault-address", "http://127.0.0.1:1", "--vault-token-file", tokenFile, "--vault-request-timeout", "500ms"}, nil, 1,
			[]string{"log in to Vault to unwrap the snapshot's data key", "check that it is running"}},
		{"Vault down, by environment", nil, map[string]string{"FORLOCK_CONTROLPLANE_VAULT_ADDRESS": "http://127.0.0.1:1",
			"FORLOCK_CONTROLPLANE_VAULT_TOKEN_FILE": tokenFile, "FORLOCK_CONTROLPLANE_VAULT_REQUEST_TIMEOUT": "500ms"}, 1,
			[]string{"check that it is running"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			parent := t.TempDir()
			var out, errOut bytes.Buffer
			args := append([]string{"snapshot", "restore", file, "--data-dir", filepath.Join(parent, "data")}, tc.args...)
			code := run(t.Context(), args, &out, &errOut, func(k string) string { return tc.env[k] })
			require.Equal(t, tc.code, code, errOut.String())
			for _, w := range tc.want {
				require.Contains(t, errOut.String(), w)
			}
			require.NotContains(t, errOut.String(), "wrong")
			ents, err := os.ReadDir(parent)
			require.NoError(t, err)
			require.Empty(t, ents, "nothing written")
		})
	}
}

// noDB is an empty database copy.
type noDB struct{}

func (noDB) SnapshotView(fn func(int64, io.WriterTo) error) error {
	return fn(0, bytes.NewReader(nil))
}
