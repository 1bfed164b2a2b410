package controlplane

import (
	"path/filepath"

	"github.com/forlock/fleet/controlplane/internal/audit"
	"github.com/forlock/fleet/controlplane/internal/secretfile"
)

// secretFiles are the files holding secrets that the control plane reads,
// with what each holds: the data dir's, and the Vault login's if set.
func (c *Config) secretFiles() [][2]string {
	files := [][2]string{
		{filepath.Join(c.DataDir, caKeyFile), "the fleet CA key"},
		{filepath.Join(c.DataDir, serverKeyFile), "the control plane's TLS key"},
		{filepath.Join(c.DataDir, kekFile), "the backup key-encryption key"},
		{filepath.Join(c.DataDir, ctlConfigFile), "the admin token"},
		{filepath.Join(c.DataDir, dbFile), "the fleet database (token hashes, wrapped backup keys)"},
		{filepath.Join(c.DataDir, auditKeyFile), audit.KeyHolds},
	}
	files = append(files, c.Snapshots.SecretFiles()...)
	if p := c.Metrics.TokenFile; p != "" {
		files = append(files, [2]string{p, "the metrics bearer token"})
	}
	if v := c.Vault; v != nil {
		if v.TokenFile != "" {
			files = append(files, [2]string{v.TokenFile, "the Vault token"})
		}
		if v.SecretIDFile != "" {
			files = append(files, [2]string{v.SecretIDFile, "the Vault secret ID"})
		}
	}
	return files
}

// checkSecretFiles refuses to start while any secret file is accessible by
// group or others. Files not made yet are created with mode 0600.
func (c *Config) checkSecretFiles() error {
	for _, f := range c.secretFiles() {
		if err := secretfile.Check(f[0], f[1]); err != nil {
			return err
		}
	}
	return nil
}
