package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/stretchr/testify/require"

	"github.com/forlock/fleet/internal/artifact"
)

// snapshotTransitKey is the Transit key the control plane's snapshots are
// encrypted to in TestControlPlaneSnapshotTransitAndS3.
const snapshotTransitKey = "cp-snapshot"

// restoreSnapshotCmd runs forlock-controlplane snapshot restore FILE
// --data-dir DIR ARGS... and returns its output and exit code.
func (c *cluster) restoreSnapshotCmd(file, dir string, args ...string) (string, int) {
	c.t.Helper()
	cmd := exec.Command(filepath.Join(c.binaries(), "forlock-controlplane"), append([]string{"snapshot", "restore", file, "--data-dir", dir}, args...)...)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	c.t.Logf("snapshot restore %s: %s", strings.Join(args, " "), time.Since(start).Round(time.Millisecond))
	if err != nil {
		var exit *exec.ExitError
		require.ErrorAs(c.t, err, &exit, "%s", out)
		return string(out), exit.ExitCode()
	}
	return string(out), 0
}

// nothingIn checks that parent holds nothing: a refused restore wrote no
// data dir, staging dir or parent.
func nothingIn(t *testing.T, parent string) {
	t.Helper()
	ents, err := os.ReadDir(parent)
	require.NoError(t, err)
	require.Empty(t, ents, "nothing written")
}

// TestControlPlaneSnapshotTransitAndS3 is control-plane DR with Vault
// Transit and S3, all real: a control plane whose snapshots are encrypted to
// a Transit key of a real Vault dev server and scheduled every 2 s to a real
// S3 server (versitygw) keeping 2; forlockctl saves one to a file too. The
// newest scheduled snapshot, downloaded from S3, restores through Vault and
// the control plane starts on it. Then what must fail fails, saying what to
// do and writing nothing: no Vault settings, a tampered body or wrapped key,
// the Transit key deleted, another key of the same name, Vault down (for
// restore and for save).
func TestControlPlaneSnapshotTransitAndS3(t *testing.T) {
	v := startVault(t)
	_, err := v.admin.Logical().Write("transit/keys/"+snapshotTransitKey, map[string]any{"type": "aes256-gcm96"})
	require.NoError(t, err)
	endpoint := startS3(t)
	keys := t.TempDir()
	akFile, skFile := filepath.Join(keys, "s3-access"), filepath.Join(keys, "s3-secret")
	require.NoError(t, os.WriteFile(akFile, []byte("forlock-test\n"), 0o600))
	require.NoError(t, os.WriteFile(skFile, []byte("forlock-test-secret\n"), 0o600))
	token := v.tokenFile(t)
	cfg := filepath.Join(t.TempDir(), "controlplane.yaml")
	require.NoError(t, os.WriteFile(cfg, fmt.Appendf(nil, `version: 1
vault:
  address: %s
  token_file: %s
  request_timeout: 5s
snapshots:
  schedule: "@every 2s"
  keep: 2
  transit_key: %s
  s3_endpoint: %s
  s3_bucket: fleet-backups
  s3_prefix: controlplane
  s3_access_key_file: %s
  s3_secret_key_file: %s
`, v.addr, token, snapshotTransitKey, endpoint, akFile, skFile), 0o600))
	c := startCluster(t, "--config", cfg)
	vaultArgs := []string{"--vault-address", v.addr, "--vault-token-file", token}

	// forlockctl: a snapshot to the Transit key, and one to a missing key.
	snap := filepath.Join(t.TempDir(), "cp.snap")
	start := time.Now()
	out := c.ctl("controlplane", "snapshot", "save", snap, "--transit-key", snapshotTransitKey)
	t.Logf("snapshot save --transit-key: %s", time.Since(start).Round(time.Millisecond))
	require.Contains(t, out, "sha256")
	f, err := os.Open(snap)
	require.NoError(t, err)
	h, err := artifact.ReadHeader(f)
	require.NoError(t, f.Close())
	require.NoError(t, err)
	require.Equal(t, "vault-transit:"+snapshotTransitKey+":v1", h.KeyID)
	require.True(t, bytes.HasPrefix(h.WrappedKey, []byte("vault:v1:")), "Vault's ciphertext")
	missing := filepath.Join(t.TempDir(), "missing.snap")
	_, err = c.ctlErr("controlplane", "snapshot", "save", missing, "--transit-key", "no-such-key")
	require.ErrorContains(t, err, `no transit key "no-such-key": create it`)
	require.NoFileExists(t, missing)

	// The schedule: snapshots land under s3://fleet-backups/controlplane/,
	// two are kept, and the oldest go as new ones come.
	mc, err := minio.New(endpoint, &minio.Options{Creds: credentials.NewStaticV4("forlock-test", "forlock-test-secret", "")})
	require.NoError(t, err)
	list := func() []string {
		var names []string
		for obj := range mc.ListObjects(context.Background(), "fleet-backups", minio.ListObjectsOptions{Prefix: "controlplane/", Recursive: true}) {
			require.NoError(t, obj.Err)
			names = append(names, obj.Key)
		}
		slices.Sort(names)
		return names
	}
	var first []string
	require.Eventually(t, func() bool { first = list(); return len(first) == 2 }, 30*time.Second, 200*time.Millisecond, "two scheduled snapshots in S3")
	// Between an upload and its retention a third object exists for a
	// moment: what counts is that it goes.
	seen := map[string]bool{}
	require.Eventually(t, func() bool {
		names := list()
		for _, n := range names {
			seen[n] = true
		}
		return len(seen) >= 4 && len(names) == 2 && !slices.Contains(names, first[0]) && !slices.Contains(names, first[1])
	}, 30*time.Second, 200*time.Millisecond, "newer snapshots replace the first two, two kept: %v", seen)
	for n := range seen {
		require.Regexp(t, `^controlplane/controlplane-\d{8}T\d{6}Z\.snap$`, n)
	}

	// The newest scheduled snapshot restores through Vault, and the control
	// plane starts on it.
	c.cp.kill(syscall.SIGTERM)
	names := list()
	obj, err := mc.GetObject(context.Background(), "fleet-backups", names[len(names)-1], minio.GetObjectOptions{})
	require.NoError(t, err)
	raw, err := io.ReadAll(obj)
	require.NoError(t, err)
	require.NoError(t, obj.Close())
	fromS3 := filepath.Join(t.TempDir(), "from-s3.snap")
	require.NoError(t, os.WriteFile(fromS3, raw, 0o600))
	restored := filepath.Join(t.TempDir(), "restored")
	out, code := c.restoreSnapshotCmd(fromS3, restored, vaultArgs...)
	require.Equal(t, 0, code, out)
	require.Contains(t, out, "restored the control plane from the snapshot taken at")
	ctlConfig, err := os.ReadFile(filepath.Join(c.dataDir, "forlockctl.yaml"))
	require.NoError(t, err)
	c.dataDir = restored
	c.startControlPlane()
	require.Contains(t, c.ctl("status"), "control plane restored at")
	got, err := os.ReadFile(filepath.Join(restored, "forlockctl.yaml"))
	require.NoError(t, err)
	adminToken := func(b []byte) string { // the ca-file path follows the data dir
		_, tok, _ := strings.Cut(string(b), "token: ")
		return tok
	}
	require.NotEmpty(t, adminToken(ctlConfig))
	require.Equal(t, adminToken(ctlConfig), adminToken(got), "the admin credential came back")

	// Refusals, each writing nothing.
	fail := func(t *testing.T, file string, wantCode int, want string, args ...string) {
		t.Helper()
		parent := t.TempDir()
		out, code := c.restoreSnapshotCmd(file, filepath.Join(parent, "data"), args...)
		require.Equal(t, wantCode, code, out)
		require.Contains(t, out, want)
		nothingIn(t, parent)
	}
	pass := filepath.Join(t.TempDir(), "pass")
	require.NoError(t, os.WriteFile(pass, []byte("a passphrase, not the key\n"), 0o600))
	t.Run("no Vault given", func(t *testing.T) {
		fail(t, snap, 2, "encrypted to a Vault Transit key", "--passphrase-file", pass)
		fail(t, snap, 2, "vault-transit:"+snapshotTransitKey+":v1", "--passphrase-file", pass)
	})
	t.Run("tampered body", func(t *testing.T) {
		b, err := os.ReadFile(snap)
		require.NoError(t, err)
		b[len(b)-len(b)/4] ^= 0x01
		bad := filepath.Join(t.TempDir(), "bad.snap")
		require.NoError(t, os.WriteFile(bad, b, 0o600))
		fail(t, bad, 1, "damaged or incomplete", vaultArgs...)
	})
	t.Run("tampered wrapped key", func(t *testing.T) {
		b, err := os.ReadFile(snap)
		require.NoError(t, err)
		i := bytes.Index(b, []byte("vault:v1:")) + len("vault:v1:") + 4
		b[i] = map[bool]byte{true: 'B', false: 'A'}[b[i] == 'A']
		bad := filepath.Join(t.TempDir(), "bad.snap")
		require.NoError(t, os.WriteFile(bad, b, 0o600))
		fail(t, bad, 1, "vault did not unwrap the data key", vaultArgs...)
	})
	t.Run("Transit key deleted, then another of its name", func(t *testing.T) {
		_, err := v.admin.Logical().Write("transit/keys/"+snapshotTransitKey+"/config", map[string]any{"deletion_allowed": true})
		require.NoError(t, err)
		_, err = v.admin.Logical().Delete("transit/keys/" + snapshotTransitKey)
		require.NoError(t, err)
		fail(t, snap, 1, "has no transit key for vault-transit:"+snapshotTransitKey+":v1: restore the key in Vault", vaultArgs...)
		_, err = v.admin.Logical().Write("transit/keys/"+snapshotTransitKey, map[string]any{"type": "aes256-gcm96"})
		require.NoError(t, err)
		fail(t, snap, 1, "not the Vault or key this snapshot was made with", vaultArgs...)
	})
	t.Run("Vault down", func(t *testing.T) {
		v.stop()
		fail(t, snap, 1, "check that it is running", vaultArgs...)
		down := filepath.Join(t.TempDir(), "down.snap")
		_, err := c.ctlErr("controlplane", "snapshot", "save", down, "--transit-key", snapshotTransitKey)
		require.ErrorContains(t, err, "check that it is running")
		require.NoFileExists(t, down)
	})
}
