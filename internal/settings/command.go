package settings

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"
)

// Exit codes of a daemon run by Execute.
const (
	ExitOK      = 0
	ExitFailure = 1 // it ran, or started, and failed
	ExitUsage   = 2 // bad flags, settings or configuration: nothing was started
)

type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// UsageError marks err as a mistake in the flags, environment or config
// file: Execute exits with ExitUsage.
func UsageError(err error) error { return &usageError{err} }

// Daemon makes cmd a daemon's root command: it takes flags only, the
// table's, and a bad flag is a usage error.
func Daemon(cmd *cobra.Command, t *Table) {
	cmd.Args = func(c *cobra.Command, args []string) error {
		if len(args) > 0 {
			return UsageError(fmt.Errorf("unexpected argument %q: %s takes flags only; see --help", args[0], c.Name()))
		}
		return nil
	}
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return UsageError(err) })
	cmd.Flags().SortFlags = false // --help lists the settings in the table's order
	t.AddFlags(cmd.Flags())
}

// Execute runs cmd with args, Go-style single-dash flags taken as pflag's
// (see GoStyleArgs), prints an error to cmd's stderr as "NAME: error" and
// returns the exit code.
func Execute(ctx context.Context, cmd *cobra.Command, args []string) int {
	cmd.SetArgs(GoStyleArgs(args, cmd.Flags()))
	err := cmd.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "%s: %v\n", cmd.Name(), err)
	if ue := (*usageError)(nil); errors.As(err, &ue) {
		return ExitUsage
	}
	return ExitFailure
}
