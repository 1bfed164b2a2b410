package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/forlock/fleet/internal/buildinfo"
	"github.com/forlock/fleet/internal/protocol"
	"github.com/forlock/fleet/internal/settings"
)

// Exit codes of Main.
const (
	exitOK      = 0
	exitFailure = 1 // the agent ran and failed
	exitUsage   = 2 // bad flags or configuration: nothing was started
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

type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func usageError(err error) error { return &exitError{exitUsage, err} }

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
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageError(fmt.Errorf("unexpected argument %q: forlock-agent takes flags only", args[0]))
			}
			return nil
		},
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := resolveSettings(cmd.Flags(), getenv)
			if err != nil {
				return usageError(err)
			}
			st.cfg.Logger = settings.NewLogger(stderr, st.logLevel, st.logFormat)
			st.cfg.TaskHandlers = handlers
			a, err := New(st.cfg)
			if err != nil {
				return usageError(err)
			}
			return a.Run(cmd.Context())
		},
	}
	cmd.SetOut(stdout)
	cmd.SetErr(stderr)
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError(err) })
	bindFlags(cmd.Flags())
	cmd.SetArgs(settings.GoStyleArgs(args, cmd.Flags()))

	err := cmd.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	fmt.Fprintf(stderr, "forlock-agent: %v\n", err)
	if ee := (*exitError)(nil); errors.As(err, &ee) {
		return ee.code
	}
	return exitFailure
}
