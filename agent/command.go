package agent

import (
	"context"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/forlock/fleet/internal/buildinfo"
	"github.com/forlock/fleet/internal/protocol"
	"github.com/forlock/fleet/internal/settings"
)

// JoinTokenEnv is the environment variable that may hold the join token.
const JoinTokenEnv = "FORLOCK_JOIN_TOKEN"

// Main runs forlock-agent with the command-line arguments args (without the
// program name) until SIGINT or SIGTERM, and returns the process exit code.
func Main(args []string) int { return MainWithHandlers(args, nil) }

// MainWithHandlers is Main with extra task handlers (see
// Config.TaskHandlers), for test binaries that wrap the real agent.
func MainWithHandlers(args []string, handlers map[protocol.Kind]TaskHandler) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return run(ctx, args, os.Stdout, os.Stderr, os.Getenv, handlers)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string, handlers map[protocol.Kind]TaskHandler) int {
	cmd := &cobra.Command{
		Use:   "forlock-agent",
		Short: "The Forlock Fleet agent: enrolls this host and keeps its control stream to the control plane",
		Long: `forlock-agent runs on every Forlock host. With no identity in its state directory it
enrolls with a join token (--join-token-file, ` + JoinTokenEnv + ` or --join-token),
then keeps a mutually authenticated control stream to the control plane, sends heartbeats,
and renews its certificate before it expires.

Every heartbeat carries the node's health checks (disk, memory, the Forlock containers,
the API's health endpoints, PostgreSQL, Redis), run in the background; a check whose
target is not configured reports UNKNOWN and says what to set. Secrets come from files
(--postgres-dsn-file, --redis-password-file, --s3-access-key-file, --s3-secret-key-file) or
` + PostgresDSNEnv + `, ` + RedisPasswordEnv + `, ` + S3AccessKeyEnv + ` and ` + S3SecretKeyEnv + `.

Backup and restore tasks write to host directories inside --backup-dirs or to a bucket on
--s3-endpoint, and archive --compose-dir and nginx's /etc/nginx in config backups.

Every setting comes from its flag, else its environment variable, else the --config file,
else its default; each flag's help names its file key and environment variable.`,
		Version: buildinfo.Version(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := resolveSettings(cmd.Flags(), getenv)
			if err != nil {
				return settings.UsageError(err)
			}
			st.cfg.Logger = settings.NewLogger(stderr, st.logLevel, st.logFormat)
			st.cfg.TaskHandlers = handlers
			a, err := New(st.cfg)
			if err != nil {
				return settings.UsageError(err)
			}
			return a.Run(cmd.Context())
		},
	}
	cmd.SetOut(stdout)
	cmd.SetErr(stderr)
	settings.Daemon(cmd, (&agentSettings{}).table())
	return settings.Execute(ctx, cmd, args)
}
