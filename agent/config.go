package agent

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/forlock/fleet/internal/protocol"
)

// DefaultStateDir is where the agent keeps its identity unless told
// otherwise.
const DefaultStateDir = "/var/lib/forlock-agent"

// Config configures an Agent. Zero values take the defaults documented on
// each field; New validates it once.
type Config struct {
	// ControlPlane is the control plane's agent endpoint as host:port.
	// Required.
	ControlPlane string
	// CAFile is a PEM bundle of the fleet CA, used to verify the control
	// plane while enrolling. After enrollment the bundle saved in the state
	// directory is used; CAFile is then only needed to re-enroll if that
	// bundle no longer verifies the control plane.
	CAFile string
	// JoinToken is a join token from `forlockctl tokens create`.
	JoinToken string
	// JoinTokenFile is a file holding a join token. It is read again at
	// every enrollment attempt, so an operator can drop a fresh token in
	// without restarting the agent; when it holds a token, it wins over
	// JoinToken.
	JoinTokenFile string
	// StateDir holds the node identity; default DefaultStateDir. It is
	// created with mode 0700 and never deleted.
	StateDir string
	// Name is the node name: 1 to 63 characters of a-z, 0-9, '-' and '.',
	// starting and ending with a letter or digit. Default: the host name,
	// lower-cased. A node that already has an identity keeps the name it
	// enrolled with.
	Name string
	// Logger receives the agent's logs; nil means slog.Default().
	Logger *slog.Logger
	// MinBackoff and MaxBackoff bound the retry delays (exponential, full
	// jitter) of enrollment, reconnection and renewal. Zero means 500ms and
	// 30s.
	MinBackoff, MaxBackoff time.Duration
	// Health configures the health checks of the node's Forlock stack,
	// run for every heartbeat and by the health_check task.
	Health HealthConfig
	// Backup configures the backup and restore tasks.
	Backup BackupConfig
	// WAL configures continuous WAL archiving.
	WAL WalConfig
	// TLS says where the node's nginx serves TLS and keeps its
	// certificate, for the cert_rotate task and the certificate check.
	TLS TLSConfig
	// Upgrade configures upgrade and rollback tasks.
	Upgrade UpgradeConfig
	// TaskHandlers add task kinds, or replace built-in ones (health_check),
	// keyed by job kind: the name of the JobSpec oneof field. Tests use it
	// to run slow or failing tasks through a real agent.
	TaskHandlers map[protocol.Kind]TaskHandler
}

// validate returns cfg with defaults filled in, or an error naming the
// first thing to fix.
func (cfg Config) validate() (Config, error) {
	if cfg.ControlPlane == "" {
		return cfg, errors.New("control plane address is not set: pass --control-plane HOST:PORT or set control_plane in the config file")
	}
	if _, _, err := splitHostPort(cfg.ControlPlane); err != nil {
		return cfg, fmt.Errorf("control plane address %q: %w", cfg.ControlPlane, err)
	}
	if cfg.StateDir == "" {
		cfg.StateDir = DefaultStateDir
	}
	abs, err := filepath.Abs(cfg.StateDir)
	if err != nil {
		return cfg, fmt.Errorf("state directory %q: %w", cfg.StateDir, err)
	}
	cfg.StateDir = abs
	cfg.JoinToken = strings.TrimSpace(cfg.JoinToken)
	if strings.ContainsFunc(cfg.JoinToken, isSpaceOrControl) {
		return cfg, errors.New("join token contains spaces or control characters: pass it exactly as `forlockctl tokens create` printed it")
	}
	if cfg.Name == "" {
		host, err := os.Hostname()
		if err != nil {
			return cfg, fmt.Errorf("no node name given and the host name is unknown (%w): pass --name", err)
		}
		cfg.Name = strings.ToLower(host)
		if err := validateName(cfg.Name); err != nil {
			return cfg, fmt.Errorf("the host name cannot serve as node name: %w: pass --name", err)
		}
	} else if err := validateName(cfg.Name); err != nil {
		return cfg, fmt.Errorf("%w: fix --name or name in the config file", err)
	}
	if cfg.MinBackoff < 0 || cfg.MaxBackoff < 0 {
		return cfg, errors.New("backoff durations must not be negative")
	}
	if cfg.MinBackoff > 0 && cfg.MaxBackoff > 0 && cfg.MinBackoff > cfg.MaxBackoff {
		return cfg, fmt.Errorf("minimum backoff %s exceeds maximum backoff %s", cfg.MinBackoff, cfg.MaxBackoff)
	}
	if cfg.Health, err = cfg.Health.validate(); err != nil {
		return cfg, fmt.Errorf("health checks: %w", err)
	}
	if cfg.Backup, err = cfg.Backup.validate(); err != nil {
		return cfg, fmt.Errorf("backups: %w", err)
	}
	if cfg.WAL, err = cfg.WAL.validate(cfg.Backup); err != nil {
		return cfg, err
	}
	if cfg.TLS, err = cfg.TLS.validate(cfg.Health); err != nil {
		return cfg, fmt.Errorf("tls: %w", err)
	}
	for kind, h := range cfg.TaskHandlers {
		if kind == "" || h == nil {
			return cfg, fmt.Errorf("task handler for kind %q: want a kind name and a handler", kind)
		}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return cfg, nil
}

// splitHostPort splits and checks a host:port address.
func splitHostPort(addr string) (host, port string, err error) {
	host, port, err = net.SplitHostPort(addr)
	if err != nil {
		return "", "", errors.New("want HOST:PORT, e.g. cp.example.net:7443")
	}
	if host == "" {
		return "", "", errors.New("host is empty: want HOST:PORT, e.g. cp.example.net:7443")
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		return "", "", fmt.Errorf("port %q is not a number from 1 to 65535", port)
	}
	return host, port, nil
}

// validateName checks a node name against the rule the control plane
// enforces (see EnrollRequest.name).
func validateName(name string) error {
	if name == "" || len(name) > 63 {
		return fmt.Errorf("node name %q must be 1 to 63 characters long", name)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		alnum := c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
		if !alnum && c != '-' && c != '.' {
			return fmt.Errorf("node name %q may hold only lower-case letters, digits, '-' and '.'", name)
		}
		if !alnum && (i == 0 || i == len(name)-1) {
			return fmt.Errorf("node name %q must start and end with a letter or digit", name)
		}
	}
	return nil
}

func isSpaceOrControl(r rune) bool { return r <= ' ' || r == 0x7f }
