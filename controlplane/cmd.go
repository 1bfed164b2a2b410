package controlplane

import (
	"context"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/forlock/fleet/internal/buildinfo"
	"github.com/forlock/fleet/internal/settings"
)

// Main runs forlock-controlplane with command-line args (without the program
// name) until SIGINT or SIGTERM, and returns the process exit code.
func Main(args []string, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return run(ctx, args, os.Stdout, stderr, os.Getenv)
}

// newCommand is forlock-controlplane's command line; start runs the
// resolved, validated Config.
func newCommand(getenv func(string) string, stdout, stderr io.Writer, start func(context.Context, *Config) error) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "forlock-controlplane",
		Short: "The Forlock Fleet control plane: the gRPC API, the node registry, jobs, schedules and backups' keys",
		Long: `forlock-controlplane serves the Forlock Fleet API to agents (mTLS) and to forlockctl and scripts
(TLS and a token). It keeps its CA, keys and database in --data-dir and writes a ready-made
forlockctl config to <data-dir>/forlockctl.yaml on its first start.

Every setting comes from its flag, else its environment variable, else the --config file,
else its default; each flag's help names its file key and environment variable. Flags written
Go-style with one dash (-config FILE, -version) work too.`,
		Version: buildinfo.Version(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, level, format, err := resolveConfig(cmd.Flags(), getenv)
			if err != nil {
				return settings.UsageError(err)
			}
			cfg.Logger = settings.NewLogger(stderr, *level, format)
			cfg.setDefaults()
			if err := cfg.validate(); err != nil {
				return settings.UsageError(err)
			}
			return start(cmd.Context(), cfg)
		},
	}
	cmd.SetOut(stdout)
	cmd.SetErr(stderr)
	settings.Daemon(cmd, (&cpSettings{}).table())
	cmd.AddCommand(newSnapshotCommand(getenv, stdout))
	cmd.Flags().Bool("rotate-admin-token", false, "make a new admin token and rewrite <data-dir>/forlockctl.yaml (an action at this start, not a setting)")
	return cmd
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	cmd := newCommand(getenv, stdout, stderr, func(ctx context.Context, cfg *Config) error {
		s, err := New(*cfg)
		if err != nil {
			cfg.Logger.Error("start-up failed", "err", err)
			return err
		}
		return s.Run(ctx)
	})
	return settings.Execute(ctx, cmd, args)
}
