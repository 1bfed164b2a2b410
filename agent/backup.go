package agent

import (
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"time"

	"github.com/forlock/fleet/agent/internal/backup"
	"github.com/forlock/fleet/agent/internal/checks"
	"github.com/forlock/fleet/internal/backupstore"
)

// Environment variables that may hold the S3 credentials of backups.
const (
	S3AccessKeyEnv = "FORLOCK_S3_ACCESS_KEY"
	S3SecretKeyEnv = "FORLOCK_S3_SECRET_KEY" //nolint:gosec // the name of a variable, not a credential
)

// BackupConfig configures the backup and restore tasks. Every field has a
// safe default; S3 is off unless S3Endpoint is set.
type BackupConfig struct {
	// ComposeDir is the node's compose directory (compose file, .env),
	// archived by config backups. Default /opt/forlock.
	ComposeDir string
	// BackupDirs are the host directories backups may be written to and
	// restored from; a job's destination must lie inside one. The first
	// holds the default destination, <dir>/<node>/. Default
	// [/var/backups/forlock].
	BackupDirs []string
	// DrillCPUs and DrillMemory limit each scratch container of a restore
	// drill (CPUs, bytes). Default 1 CPU, 1 GiB.
	DrillCPUs   float64
	DrillMemory int64
	// RecoveryTimeout bounds the WAL replay of a point-in-time restore;
	// past it the previous data is put back. Default 30 min.
	RecoveryTimeout time.Duration
	// S3Endpoint is the S3-compatible server's host:port, without scheme;
	// empty means no S3.
	S3Endpoint string
	// S3AccessKey and S3SecretKey are the credentials (from the
	// environment); S3AccessKeyFile and S3SecretKeyFile, files holding
	// them, read at every task, win when set.
	S3AccessKey, S3AccessKeyFile string
	S3SecretKey, S3SecretKeyFile string
	// S3TLS selects https.
	S3TLS bool
	// S3Region is the bucket's region; default us-east-1.
	S3Region string
}

// maxRecoveryTimeout bounds recovery_timeout: a node's API stays down for
// the whole replay.
const maxRecoveryTimeout = 24 * time.Hour

var (
	s3Region   = regexp.MustCompile(`^[a-z0-9-]{1,64}$`)
	s3Endpoint = regexp.MustCompile(`^[A-Za-z0-9.\-\[\]:]+$`)
)

// validate returns b with defaults filled in, or an error naming the
// first thing to fix.
func (b BackupConfig) validate() (BackupConfig, error) { return b.check(true) }

// check is validate; without needKeys it does not ask for S3 credentials,
// which the environment may provide (the config file alone).
func (b BackupConfig) check(needKeys bool) (BackupConfig, error) {
	if b.ComposeDir == "" {
		b.ComposeDir = backup.DefaultComposeDir
	}
	if err := absClean(b.ComposeDir); err != nil {
		return b, fmt.Errorf("compose dir: %w", err)
	}
	if len(b.BackupDirs) == 0 {
		b.BackupDirs = []string{backupstore.DefaultDir}
	}
	if b.RecoveryTimeout < time.Minute || b.RecoveryTimeout > maxRecoveryTimeout {
		if b.RecoveryTimeout != 0 {
			return b, fmt.Errorf("recovery timeout %s: want 1m to %s (the replay's bound: about a minute per few GB of WAL on a small host)", b.RecoveryTimeout, maxRecoveryTimeout)
		}
		b.RecoveryTimeout = backup.DefaultRecoveryTimeout
	}
	if err := backup.ValidateDirs(b.BackupDirs); err != nil {
		return b, err
	}
	hasKeys := b.S3AccessKey != "" || b.S3AccessKeyFile != "" || b.S3SecretKey != "" || b.S3SecretKeyFile != ""
	switch {
	case b.S3Endpoint == "" && (hasKeys || b.S3TLS || b.S3Region != ""):
		return b, errors.New("S3 settings are given but no s3 endpoint: set s3_endpoint HOST:PORT, or remove the other s3_ settings")
	case b.S3Endpoint == "":
		return b, nil
	}
	if _, _, err := splitHostPort(b.S3Endpoint); err != nil || !s3Endpoint.MatchString(b.S3Endpoint) {
		return b, fmt.Errorf("s3 endpoint %q: want HOST:PORT without scheme, e.g. s3.example.net:9000 (set s3_tls for https)", b.S3Endpoint)
	}
	if needKeys && b.S3AccessKey == "" && b.S3AccessKeyFile == "" {
		return b, fmt.Errorf("s3 endpoint %s has no access key: set s3_access_key_file or %s", b.S3Endpoint, S3AccessKeyEnv)
	}
	if needKeys && b.S3SecretKey == "" && b.S3SecretKeyFile == "" {
		return b, fmt.Errorf("s3 endpoint %s has no secret key: set s3_secret_key_file or %s", b.S3Endpoint, S3SecretKeyEnv)
	}
	if b.S3Region != "" && !s3Region.MatchString(b.S3Region) {
		return b, fmt.Errorf("s3 region %q: want lower-case letters, digits and '-', e.g. us-east-1", b.S3Region)
	}
	return b, nil
}

func absClean(p string) error {
	if !filepath.IsAbs(p) {
		return fmt.Errorf("%q must be an absolute path", p)
	}
	if c := filepath.Clean(p); c != p {
		return fmt.Errorf("%q must be a clean path (did you mean %q?)", p, c)
	}
	return nil
}

// backupConfig builds the handlers' config from the agent's.
func (a *Agent) backupConfig(hc *health) backup.Config {
	b, h := a.cfg.Backup, a.cfg.Health
	cfg := backup.Config{
		Node:         a.nodeName,
		RedisAddr:    h.RedisAddr,
		ComposeDir:   b.ComposeDir,
		BackupDirs:   b.BackupDirs,
		Logger:       a.log,
		OnBaseBackup: a.noteBaseBackup,
		DeleteWAL:    a.deleteWAL,
		// 0 or less: backup.Config's defaults.
		DrillNanoCPUs:   int64(b.DrillCPUs * 1e9),
		DrillMemory:     b.DrillMemory,
		RecoveryTimeout: b.RecoveryTimeout,
	}
	if hc.docker != nil {
		cfg.Docker = hc.docker
	} else {
		cfg.DockerUnavailable = "the Docker Engine client could not be set up: fix docker_host or DOCKER_HOST"
	}
	if probe, ok := a.apiProbe(); ok {
		cfg.APIReady = probe
	}
	redisPW := checks.Secret{Value: h.RedisPassword, File: h.RedisPasswordFile}
	if redisPW.IsSet() {
		cfg.RedisPassword = redisPW.Read
	}
	cfg.S3 = b.s3()
	return cfg
}

// s3 is the agent's S3 server for backups and the WAL archive (none when
// s3_endpoint is not set); the credentials are read at each use.
func (b BackupConfig) s3() backup.S3Config {
	if b.S3Endpoint == "" {
		return backup.S3Config{}
	}
	return backup.S3Config{Endpoint: b.S3Endpoint, TLS: b.S3TLS, Region: b.S3Region,
		AccessKey: checks.Secret{Value: b.S3AccessKey, File: b.S3AccessKeyFile}.Read,
		SecretKey: checks.Secret{Value: b.S3SecretKey, File: b.S3SecretKeyFile}.Read}
}

// nodeName is the name artifacts are labelled with: the enrolled
// identity's, else the configured one.
func (a *Agent) nodeName() string {
	if id := a.identity(); id != nil && id.Name != "" {
		return id.Name
	}
	return a.cfg.Name
}

// removeBackupTemps removes the temporary files of backups that a crash or
// kill interrupted (their tasks are reported interrupted; nothing of them is
// cataloged). It runs before the agent takes tasks, so no Put is running.
func (a *Agent) removeBackupTemps(dirs []string) {
	for _, dir := range dirs {
		d, err := backupstore.NewDir(backupstore.DirConfig{Root: dir})
		if err != nil {
			continue // the config check already refused bad paths
		}
		removed, err := d.RemoveTemps()
		for _, p := range removed {
			a.log.Warn("removed the partial file of an interrupted backup", "path", p)
		}
		if err != nil {
			a.log.Warn("could not remove every partial file of interrupted backups: remove them by hand", "dir", dir, "error", err.Error())
		}
	}
}
