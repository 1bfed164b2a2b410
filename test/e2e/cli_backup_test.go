package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/forlock/fleet/agent"
	"github.com/forlock/fleet/controlplane"
	"github.com/forlock/fleet/internal/artifact"
	"github.com/forlock/fleet/internal/keys"
	"github.com/forlock/fleet/internal/protocol"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// These tests cover what forlockctl's backup commands do without the
// agent's backup and restore handlers: the catalog, local validation, the
// control plane's refusals, and offline decryption.

func TestCtlRestoreListEmptyCatalog(t *testing.T) {
	f := newFleet(t, nil)

	code, stdout, stderr := runCtl(t, args(f.ctl(), "restore", "--list")...)
	require.Equal(t, 0, code, stderr)
	require.Empty(t, stdout)
	require.Equal(t, "no restore points yet: make one with 'forlockctl backup'\n", stderr)

	code, stdout, stderr = runCtl(t, args(f.ctl(), "restore", "--list", "-o", "json")...)
	require.Equal(t, 0, code, stderr)
	require.Equal(t, "{}\n", stdout)

	code, _, stderr = runCtl(t, args(f.ctl(), "restore", "--list", "--node", "nope")...)
	require.Equal(t, 1, code)
	// One message for an unknown node from every service that takes one.
	require.Equal(t, "forlockctl: node \"nope\" not found: see 'forlockctl nodes list'\n", stderr)

	code, _, stderr = runCtl(t, args(f.ctl(), "backups", "get", "nope-postgres")...)
	require.Equal(t, 1, code)
	require.Contains(t, stderr, `artifact "nope-postgres" not found: see 'forlockctl restore --list'`)
}

func TestCtlBackupRestoreValidationExitsUsage(t *testing.T) {
	f := newFleet(t, nil)
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"backup", "--all", "--dest", "/var/backups/../../etc"}, "'..' is not allowed"},
		{[]string{"backup", "--all", "--dest", "relative/dir"}, "give an absolute directory"},
		{[]string{"backup", "--all", "--s3", "Not_A_Bucket"}, "a bucket name is 3-63 lower-case"},
		{[]string{"backup", "--all", "--dest", "/b", "--s3", "bucket"}, "--dest and --s3 cannot be combined"},
		{[]string{"backup", "--all", "--only", "mysql"}, "unknown kind"},
		{[]string{"restore", "--latest"}, "give --node NODE"},
		{[]string{"restore", "--latest", "--node", "a", "--node", "b", "--yes"}, "give exactly one node"},
		{[]string{"restore", "--node", "a", "--yes"}, "what to restore?"},
		{[]string{"restore", "--node", "a", "--latest"}, "without confirmation: pass --yes"},
		{[]string{"backup", "decrypt", "x.enc"}, "--key-file is required"},
	} {
		code, stdout, stderr := runCtl(t, args(f.ctl(), tt.args...)...)
		require.Equal(t, 64, code, "%v: %s", tt.args, stderr)
		require.Empty(t, stdout)
		require.Contains(t, stderr, tt.want, "%v", tt.args)
	}
	resp, err := forlockv1.NewJobServiceClient(f.conn).ListJobs(f.admin(), &forlockv1.ListJobsRequest{})
	require.NoError(t, err)
	require.Empty(t, resp.GetJobs(), "a refused command line submits no job")
}

// failingBackup stands in for the agent's backup handler, which is not
// there yet: it fails every task.
type failingBackup struct{}

func (failingBackup) Run(context.Context, agent.TaskAssignment, func(*forlockv1.Progress)) (agent.TaskResult, error) {
	return agent.TaskResult{}, errors.New("backup destination full")
}

func TestCtlBackupAndRestoreReachTheControlPlane(t *testing.T) {
	f := newFleet(t, nil)
	f.runAgent(agentOpts{name: "db-1", token: f.joinToken(1), handlers: map[protocol.Kind]agent.TaskHandler{"backup": failingBackup{}}})
	f.waitOnline(1)

	code, stdout, stderr := runCtl(t, args(f.ctl(), "backup", "--node", "db-1", "--s3", "forlock-backups", "--only", "postgres")...)
	require.Equal(t, 1, code, stderr)
	require.Regexp(t, `(?m)^db-1\s+failed\s+.*backup destination full$`, stdout)
	require.Contains(t, stderr, "failed: none of its 1 tasks succeeded")

	code, _, stderr = runCtl(t, args(f.ctl(), "restore", "--latest", "--node", "db-1", "--yes")...)
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "node db-1 has no restore point with every artifact asked for: back it up first")

	// One ID that is no artifact is taken as a restore point ID.
	code, _, stderr = runCtl(t, args(f.ctl(), "restore", "18a2c3d4e5f60718293a4b5c", "--node", "db-1", "--yes")...)
	require.Equal(t, 1, code)
	require.Contains(t, stderr, `restore point "18a2c3d4e5f60718293a4b5c" not found in the catalog`)

	code, _, stderr = runCtl(t, args(f.ctl(), "restore", "a-postgres", "b-redis", "--node", "db-1", "--yes")...)
	require.Equal(t, 1, code)
	require.Contains(t, stderr, `artifact "a-postgres" not found in the catalog`)
}

func TestCtlBackupDecrypt(t *testing.T) {
	// The key file is the one a real control plane made in its data dir.
	var dataDir string
	newFleet(t, func(c *controlplane.Config) { dataDir = c.DataDir })
	kekFile := filepath.Join(dataDir, "backup-kek.json")
	kek, err := keys.LoadFile(kekFile)
	require.NoError(t, err)

	plain := make([]byte, 2<<20+777)
	_, err = rand.Read(plain)
	require.NoError(t, err)
	dir := t.TempDir()
	art := filepath.Join(dir, "postgres_20260301_100000.dump.zst.enc")
	require.NoError(t, os.WriteFile(art, sealArtifact(t, kek, plain), 0o600))

	// No connection settings: decrypt works without the control plane.
	out := filepath.Join(dir, "forlock.dump")
	code, stdout, stderr := runCtl(t, "backup", "decrypt", art, "--key-file", kekFile, "-o", out)
	require.Equal(t, 0, code, stderr)
	require.Empty(t, stdout)
	require.Contains(t, stderr, "postgres of node db-1 taken 2026-03-01 10:00:00Z (original file postgres_20260301_100000.dump)")
	got, err := os.ReadFile(out)
	require.NoError(t, err)
	require.True(t, bytes.Equal(plain, got), "round trip changed the data")

	code, stdout, stderr = runCtl(t, "backup", "decrypt", art, "--key-file", kekFile)
	require.Equal(t, 0, code, stderr)
	require.True(t, bytes.Equal(plain, []byte(stdout)), "round trip to stdout changed the data")

	// One flipped byte: refused, and no output file appears.
	raw, err := os.ReadFile(art)
	require.NoError(t, err)
	raw[len(raw)/2] ^= 0x80
	bad := filepath.Join(dir, "flipped.enc")
	require.NoError(t, os.WriteFile(bad, raw, 0o600))
	badOut := filepath.Join(dir, "flipped.dump")
	code, _, stderr = runCtl(t, "backup", "decrypt", bad, "--key-file", kekFile, "-o", badOut)
	require.Equal(t, 1, code)
	require.Contains(t, stderr, bad+" is damaged (changed or truncated since it was written) and cannot be trusted")
	require.Contains(t, stderr, badOut+" was not written (the partial output was discarded)")
	require.NoFileExists(t, badOut)
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, entries, 3, "only the artifact, the flipped copy and the first output")

	// A key file of another control plane: refused as the wrong key.
	other := filepath.Join(t.TempDir(), "backup-kek.json")
	otherKEK, err := keys.LoadOrCreateFile(other)
	require.NoError(t, err)
	code, _, stderr = runCtl(t, "backup", "decrypt", art, "--key-file", other, "-o", filepath.Join(dir, "wrong.dump"))
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "wrong key: "+art+" was encrypted under key "+kek.KeyID()+", and the key file holds key "+otherKEK.KeyID())
	require.NoFileExists(t, filepath.Join(dir, "wrong.dump"))
}

// sealArtifact encrypts plain as the agent's pipeline does, under a fresh
// data key wrapped by kek.
func sealArtifact(t *testing.T, kek keys.Wrapper, plain []byte) []byte {
	t.Helper()
	dk, err := keys.NewDataKey()
	require.NoError(t, err)
	wrapped, err := kek.Wrap(context.Background(), dk)
	require.NoError(t, err)
	var buf bytes.Buffer
	w, err := artifact.NewWriter(&buf, artifact.Header{
		Kind: artifact.KindPostgres, Node: "db-1", Created: time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC),
		KeyID: kek.KeyID(), WrappedKey: wrapped, FileName: "postgres_20260301_100000.dump",
	}, dk)
	require.NoError(t, err)
	_, err = w.Write(plain)
	require.NoError(t, err)
	require.NoError(t, w.Close())
	return buf.Bytes()
}
