package controlplane

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/forlock/fleet/controlplane/internal/secretfile"
	"github.com/forlock/fleet/controlplane/internal/snapshot"
)

// Every file holding a secret that the control plane reads must be private
// to its owner: at 0640 or 0604 the control plane refuses to start and names
// the file, what it holds and the chmod; at 0600 it starts.
func TestSecretFileModes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cp")
	startEnvIn(t, dir, nil).stop() // makes every data dir file
	vaultDir := t.TempDir()
	tokenFile, secretIDFile := filepath.Join(vaultDir, "vault-token"), filepath.Join(vaultDir, "secret-id")
	require.NoError(t, os.WriteFile(tokenFile, []byte("hvs.not-a-real-token\n"), 0o600))
	require.NoError(t, os.WriteFile(secretIDFile, []byte("not-a-real-secret-id\n"), 0o600))

	base := func() Config {
		return Config{DataDir: dir, Listen: "127.0.0.1:0", HeartbeatInterval: 200 * time.Millisecond}
	}
	s3AK, s3SK := filepath.Join(vaultDir, "s3-access"), filepath.Join(vaultDir, "s3-secret")
	require.NoError(t, os.WriteFile(s3AK, []byte("access\n"), 0o600))
	require.NoError(t, os.WriteFile(s3SK, []byte("secret\n"), 0o600))
	snapPass := filepath.Join(vaultDir, "snapshot-pass")
	require.NoError(t, os.WriteFile(snapPass, []byte("a snapshot passphrase\n"), 0o600))
	withS3Snapshots := func() Config {
		c := base()
		c.Snapshots = snapshot.Schedule{Cron: "@daily", Keep: 1, PassphraseFile: snapPass,
			S3: snapshot.S3{Endpoint: "127.0.0.1:1", Bucket: "snapshots", AccessKeyFile: s3AK, SecretKeyFile: s3SK}}
		return c
	}
	// Vault at a closed port: once the files pass, start-up moves on to the
	// login and fails there, which proves the mode check let them through.
	withVault := func(v VaultConfig) func() Config {
		return func() Config {
			c := base()
			v.Address, v.RequestTimeout = "http://127.0.0.1:1", 200*time.Millisecond
			c.Vault = &v
			return c
		}
	}
	for _, tt := range []struct {
		file, holds string
		cfg         func() Config
		vault       bool // the 0600 twin stops at the Vault login
	}{
		{filepath.Join(dir, "ca.key"), "the fleet CA key", base, false},
		{filepath.Join(dir, "server.key"), "the control plane's TLS key", base, false},
		{filepath.Join(dir, "backup-kek.json"), "the backup key-encryption key", base, false},
		{filepath.Join(dir, "forlockctl.yaml"), "the admin token", base, false},
		{filepath.Join(dir, "fleet.db"), "the fleet database", base, false},
		{filepath.Join(dir, "audit.key"), "the audit checkpoint signing key", base, false},
		{tokenFile, "the Vault token", withVault(VaultConfig{TokenFile: tokenFile}), true},
		{secretIDFile, "the Vault secret ID", withVault(VaultConfig{RoleID: "role", SecretIDFile: secretIDFile}), true},
		{snapPass, "the snapshots' passphrase", withS3Snapshots, false},
		{s3AK, "the snapshots' S3 access key", withS3Snapshots, false},
		{s3SK, "the snapshots' S3 secret key", withS3Snapshots, false},
	} {
		t.Run(filepath.Base(tt.file), func(t *testing.T) {
			for _, mode := range []os.FileMode{0o640, 0o604} {
				require.NoError(t, os.Chmod(tt.file, mode))
				s, err := New(tt.cfg())
				if s != nil {
					runBriefly(t, s) // the old code started: stop it before failing
				}
				require.ErrorIs(t, err, secretfile.ErrExposed)
				require.ErrorContains(t, err, fmt.Sprintf("%s has mode %04o: it holds %s", tt.file, mode, tt.holds))
				require.ErrorContains(t, err, "run chmod 600 "+tt.file)
			}
			require.NoError(t, os.Chmod(tt.file, 0o600))
			s, err := New(tt.cfg())
			if tt.vault {
				require.ErrorContains(t, err, "vault: ")
				require.NotErrorIs(t, err, secretfile.ErrExposed)
				return
			}
			require.NoError(t, err)
			runBriefly(t, s)
		})
	}
}

// runBriefly runs s and stops it at once, closing its listener and database.
func runBriefly(t *testing.T, s *Server) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.NoError(t, s.Run(ctx))
}
