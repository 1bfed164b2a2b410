package backup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"time"

	"github.com/forlock/fleet/agent/internal/dbsource"
	"github.com/forlock/fleet/agent/internal/dockerrt"
	"github.com/forlock/fleet/internal/backupstore"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// Defaults of Config.
const (
	DefaultComposeDir    = "/opt/forlock"
	DefaultStopTimeout   = 30 * time.Second
	DefaultHealthTimeout = 3 * time.Minute
	// ProgressInterval is how often a running task reports its bytes.
	ProgressInterval = 250 * time.Millisecond
)

// Docker is what the tasks need of the node's containers; dockerrt.Runtime
// is one. Services are "api", "postgres", "redis" and "nginx".
type Docker interface {
	Exec(ctx context.Context, service, user string, cmd []string, stdin io.Reader, stdout io.Writer) (dockerrt.ExecResult, error)
	State(ctx context.Context, service string) (dockerrt.State, error)
	Stop(ctx context.Context, service string, timeout time.Duration) error
	Start(ctx context.Context, service string) error
	CopyTo(ctx context.Context, service, dir string, tarball io.Reader) error
	RunBeside(ctx context.Context, service, user string, cmd []string) (dockerrt.ExecResult, error)
	StartScratch(ctx context.Context, cfg dockerrt.ScratchConfig) (*dockerrt.Scratch, error)
	RemoveScratch(ctx context.Context, services ...string) ([]string, error)
}

// Secret returns a credential when a task needs it (a file is read again
// each time, so a rotated one is picked up).
type Secret func() (string, error)

// S3Config is the S3-compatible server of the agent. A task names only the
// bucket and prefix; endpoint and credentials never leave the host.
type S3Config struct {
	// Endpoint is host:port; empty means no S3 server is configured.
	Endpoint string
	// AccessKey and SecretKey return the credentials.
	AccessKey, SecretKey Secret
	// TLS selects https.
	TLS bool
	// Region, default us-east-1.
	Region string
}

// Config configures the handlers.
type Config struct {
	// Node returns the node's name, written into every artifact header.
	// Required.
	Node func() string
	// Docker reaches the node's containers. Nil fails every task with
	// DockerUnavailable as the reason.
	Docker Docker
	// DockerUnavailable says why Docker is nil.
	DockerUnavailable string
	// RedisAddr is Redis's host:port as the agent reaches it; needed to
	// back up and restore Redis.
	RedisAddr string
	// RedisPassword returns Redis's password; nil means none.
	RedisPassword Secret
	// ComposeDir is the node's compose directory (compose file, .env),
	// archived in config artifacts. Default DefaultComposeDir.
	ComposeDir string
	// BackupDirs are the host directories backups may be written to and
	// restored from; a destination outside them is refused. The first
	// holds the default destination, <dir>/<node>/. Default
	// [backupstore.DefaultDir].
	BackupDirs []string
	// S3 is the agent's S3 server, if any.
	S3 S3Config
	// OnBaseBackup, if set, is told the WAL position of every physical base
	// backup that succeeded (the WAL archiver heals a gap with it).
	OnBaseBackup func(pos dbsource.BasePosition)
	// DeleteWAL, if set, carries out the WAL part of a delete_backup task
	// (DeleteBackupSpec.wal) and returns how many files it removed; nil
	// refuses such a task.
	DeleteWAL func(ctx context.Context, ranges []*forlockv1.WalRange) (int, error)
	// APIReady, if set, asks the API's health endpoint once; a restore
	// takes a running API that answers it as healthy without waiting for
	// the Docker healthcheck's next run (which may be 30 s away).
	APIReady func(ctx context.Context) error
	// StopTimeout is how long a restore waits for a container to stop
	// before the engine kills it. Default DefaultStopTimeout.
	StopTimeout time.Duration
	// HealthTimeout bounds the wait for the API (and Redis) to be healthy
	// again after a restore. Default DefaultHealthTimeout.
	HealthTimeout time.Duration
	// RecoveryTimeout bounds the WAL replay of a point-in-time restore,
	// from the server's start to the end of recovery. Default
	// DefaultRecoveryTimeout.
	RecoveryTimeout time.Duration
	// DrillNanoCPUs and DrillMemory limit each scratch container of a
	// restore drill. Defaults DefaultDrillNanoCPUs, DefaultDrillMemory.
	DrillNanoCPUs int64
	DrillMemory   int64
	// DrillStartTimeout bounds the wait for a scratch server to accept
	// connections. Default DefaultDrillStartTimeout.
	DrillStartTimeout time.Duration
	// Logger receives task events; nil discards them.
	Logger *slog.Logger
	// Now is the clock, for tests; nil means time.Now.
	Now func() time.Time
}

// ValidateDirs checks allowed backup directories: absolute, clean, not the
// root directory, no duplicates.
func ValidateDirs(dirs []string) error {
	for i, d := range dirs {
		switch {
		case !filepath.IsAbs(d):
			return fmt.Errorf("backup directory %q: must be an absolute path", d)
		case filepath.Clean(d) != d:
			return fmt.Errorf("backup directory %q: must be a clean path (did you mean %q?)", d, filepath.Clean(d))
		case d == "/":
			return errors.New("backup directory \"/\": allowing the whole file system is refused, name a directory for backups")
		case slices.Contains(dirs[:i], d):
			return fmt.Errorf("backup directory %q is listed twice", d)
		}
	}
	return nil
}

// withDefaults checks cfg and fills in the defaults.
func (cfg Config) withDefaults() (Config, error) {
	if cfg.Node == nil {
		return cfg, errors.New("backup: no node name")
	}
	if cfg.ComposeDir == "" {
		cfg.ComposeDir = DefaultComposeDir
	}
	if !filepath.IsAbs(cfg.ComposeDir) || filepath.Clean(cfg.ComposeDir) != cfg.ComposeDir {
		return cfg, fmt.Errorf("compose directory %q: must be an absolute, clean path", cfg.ComposeDir)
	}
	if len(cfg.BackupDirs) == 0 {
		cfg.BackupDirs = []string{backupstore.DefaultDir}
	}
	if err := ValidateDirs(cfg.BackupDirs); err != nil {
		return cfg, err
	}
	cfg.BackupDirs = slices.Clone(cfg.BackupDirs)
	if cfg.StopTimeout <= 0 {
		cfg.StopTimeout = DefaultStopTimeout
	}
	if cfg.RecoveryTimeout <= 0 {
		cfg.RecoveryTimeout = DefaultRecoveryTimeout
	}
	if cfg.HealthTimeout <= 0 {
		cfg.HealthTimeout = DefaultHealthTimeout
	}
	if cfg.DrillNanoCPUs <= 0 {
		cfg.DrillNanoCPUs = DefaultDrillNanoCPUs
	}
	if cfg.DrillMemory <= 0 {
		cfg.DrillMemory = DefaultDrillMemory
	}
	if cfg.DrillStartTimeout <= 0 {
		cfg.DrillStartTimeout = DefaultDrillStartTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return cfg, nil
}
