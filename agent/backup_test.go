package agent

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestBackupSettings(t *testing.T) {
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "agent.yaml")
	require.NoError(t, os.WriteFile(cfgFile, []byte("version: 1\ncompose_dir: /srv/forlock\nbackup_dirs: [/b1, /b2]\n"+
		"s3_endpoint: s3:9000\ns3_access_key_file: ak\ns3_secret_key_file: sk\ns3_region: eu-1\n"), 0o600))

	st, err := resolve(t, []string{"--config", cfgFile}, nil)
	require.NoError(t, err)
	require.Equal(t, BackupConfig{ComposeDir: "/srv/forlock", BackupDirs: []string{"/b1", "/b2"}, DrillCPUs: 1, DrillMemory: 1 << 30, RecoveryTimeout: 30 * time.Minute, S3Endpoint: "s3:9000",
		S3AccessKeyFile: filepath.Join(dir, "ak"), S3SecretKeyFile: filepath.Join(dir, "sk"), S3Region: "eu-1"}, st.cfg.Backup)

	// The environment beats the file's key files; a flag beats both.
	st, err = resolve(t, []string{"--config", cfgFile, "--backup-dirs", "/f1,/f2", "--compose-dir", "/f/c", "--s3-tls",
		"--s3-secret-key-file", "/f/sk", "--s3-endpoint", "f:1", "--s3-region", "r", "--recovery-timeout", "2h"},
		map[string]string{S3AccessKeyEnv: "env-ak", S3SecretKeyEnv: "env-sk"})
	require.NoError(t, err)
	require.Equal(t, BackupConfig{ComposeDir: "/f/c", BackupDirs: []string{"/f1", "/f2"}, DrillCPUs: 1, DrillMemory: 1 << 30, RecoveryTimeout: 2 * time.Hour, S3Endpoint: "f:1",
		S3AccessKey: "env-ak", S3SecretKey: "env-sk", S3SecretKeyFile: "/f/sk", S3TLS: true, S3Region: "r"}, st.cfg.Backup)

	// Defaults, and the checks New makes.
	b, err := BackupConfig{}.validate()
	require.NoError(t, err)
	require.Equal(t, BackupConfig{ComposeDir: "/opt/forlock", BackupDirs: []string{"/var/backups/forlock"}, RecoveryTimeout: 30 * time.Minute}, b)
	for _, tt := range []struct {
		name string
		in   BackupConfig
		want string
	}{
		{"endpoint without keys", BackupConfig{S3Endpoint: "s3:9000"}, "s3 endpoint s3:9000 has no access key: set s3_access_key_file or FORLOCK_S3_ACCESS_KEY"},
		{"endpoint without secret", BackupConfig{S3Endpoint: "s3:9000", S3AccessKey: "a"}, "s3 endpoint s3:9000 has no secret key"},
		{"endpoint without port", BackupConfig{S3Endpoint: "s3", S3AccessKey: "a", S3SecretKey: "b"}, `s3 endpoint "s3": want HOST:PORT`},
		{"tls without endpoint", BackupConfig{S3TLS: true}, "S3 settings are given but no s3 endpoint"},
		{"relative dir", BackupConfig{BackupDirs: []string{"b"}}, `backup directory "b": must be an absolute path`},
		{"recovery timeout too short", BackupConfig{RecoveryTimeout: time.Second}, "recovery timeout 1s: want 1m to 24h0m0s"},
		{"recovery timeout too long", BackupConfig{RecoveryTimeout: 48 * time.Hour}, "recovery timeout 48h0m0s: want 1m to 24h0m0s"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.in.validate()
			require.ErrorContains(t, err, tt.want)
		})
	}
	_, err = New(Config{ControlPlane: "cp:1", Name: "n", Backup: BackupConfig{BackupDirs: []string{"/"}}})
	require.ErrorContains(t, err, `agent config: backups: backup directory "/": allowing the whole file system is refused`)
}
