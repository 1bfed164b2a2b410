// Package commands implements forlockctl's command tree on cobra.
//
// Every command talks to the control plane only through the public gRPC API
// in proto/forlock/v1, exactly as an automation script would. Connection
// settings come from flags, then FORLOCK_* environment variables, then a
// context in the client configuration file (package ctlconfig). Output is a
// table for people or, with -o json, one protojson document for scripts.
//
// Exit codes: 0 success, 1 the operation failed, 64 (EX_USAGE of
// sysexits.h) the command line was wrong (unknown flag, bad argument, failed
// local validation). Commands that run or watch a job exit with the job's
// outcome instead: 0 every task succeeded, 2 some failed, 1 none succeeded
// or the job was cancelled, 130 the watch was interrupted (the job keeps
// running). 2 means only "partially failed", never a usage error.
package commands

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"
)

// Exit codes returned by Run.
const (
	ExitOK      = 0
	ExitFailure = 1
	// ExitUsage is EX_USAGE of sysexits.h, apart from every job outcome.
	ExitUsage = 64
)

// IO is the process environment a command runs in; tests supply their own.
type IO struct {
	In     io.Reader
	Out    io.Writer
	Err    io.Writer
	Getenv func(string) string
}

// Execute runs forlockctl with the process's arguments, standard streams
// and environment, and returns the exit code. SIGINT and SIGTERM cancel the
// call in flight.
func Execute() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return Run(ctx, os.Args[1:], IO{In: os.Stdin, Out: os.Stdout, Err: os.Stderr, Getenv: os.Getenv})
}

// Run executes the command line args and returns the exit code. Errors are
// printed to stdio.Err prefixed with "forlockctl: ".
func Run(ctx context.Context, args []string, stdio IO) int {
	a := &app{io: stdio, now: time.Now}
	root := newRootCmd(a)
	root.SetArgs(args)
	root.SetIn(stdio.In)
	root.SetOut(stdio.Out)
	root.SetErr(stdio.Err)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	fmt.Fprintf(stdio.Err, "forlockctl: %v\n", err)
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	var ue *usageError
	if errors.As(err, &ue) {
		return ExitUsage
	}
	return ExitFailure
}

// app holds what the commands of one invocation share.
type app struct {
	io     IO
	now    func() time.Time
	conn   connFlags
	output string
}

func newRootCmd(a *app) *cobra.Command {
	root := &cobra.Command{
		Use:   "forlockctl",
		Short: "Operate a Forlock Fleet through its control plane",
		Long: `forlockctl operates a Forlock Fleet through the control plane's gRPC API.

Connection settings, highest precedence first: the flags --addr, --ca-file,
--token, --context and --config; the environment variables FORLOCK_ADDR,
FORLOCK_CA_FILE, FORLOCK_TOKEN, FORLOCK_CONTEXT and FORLOCK_CONFIG; the
configuration file (default $XDG_CONFIG_HOME/forlock/forlockctl.yaml, else
~/.config/forlock/forlockctl.yaml). The control plane writes a ready-made file
to <data-dir>/forlockctl.yaml on its first start.`,
		SilenceErrors: true,
		SilenceUsage:  true,
		Args:          cobra.ArbitraryArgs,
		RunE:          groupRun,
		PersistentPreRunE: func(*cobra.Command, []string) error {
			if a.output != outputTable && a.output != outputJSON {
				return usageErrorf("unknown output format %q: use -o table or -o json", a.output)
			}
			return nil
		},
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageErrorf("%w\nrun '%s --help' for usage", err, c.CommandPath())
	})
	pf := root.PersistentFlags()
	pf.StringVarP(&a.output, "output", "o", outputTable, "output format: table or json")
	a.conn.register(pf)

	root.AddCommand(newTokensCmd(a), newNodesCmd(a), newJobsCmd(a), newUpgradeCmd(a), newCertsCmd(a), newHealthCmd(a, false), newHealthCmd(a, true),
		newStatusCmd(a), newLogsCmd(a), newBackupCmd(a), newRestoreCmd(a), newBackupsCmd(a), newVersionCmd(a),
		newAccessCmd(a), newAuditCmd(a), newControlPlaneCmd(a), newAlertsCmd(a))
	return root
}

// groupRun is the RunE of commands that only group subcommands: without
// arguments it shows help, with an unknown one it fails with suggestions.
func groupRun(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return cmd.Help()
	}
	msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
	if cmd.SuggestionsMinimumDistance <= 0 {
		cmd.SuggestionsMinimumDistance = 2
	}
	if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
		msg += fmt.Sprintf(" (did you mean %q?)", s[0])
	}
	return usageErrorf("%s\nrun '%s --help' for the list of commands", msg, cmd.CommandPath())
}

// usageError marks a mistake on the command line; Run exits with ExitUsage.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usageErrorf(format string, args ...any) error {
	return &usageError{err: fmt.Errorf(format, args...)}
}

// exitError ends the command with a given exit code, e.g. the outcome of a
// job; its message is printed like any other error.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// exactArg requires exactly one positional argument, described by what.
func exactArg(what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != 1 || args[0] == "" {
			return usageErrorf("%s needs exactly one %s (got %d arguments): run '%s --help'",
				cmd.CommandPath(), what, len(args), cmd.CommandPath())
		}
		return nil
	}
}

// noArgs rejects positional arguments with a usage error.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageErrorf("%s takes no arguments (got %q): run '%s --help'", cmd.CommandPath(), args, cmd.CommandPath())
	}
	return nil
}
