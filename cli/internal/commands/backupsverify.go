package commands

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

const backupsVerifyHelp = `Run a restore drill: restore a restore point into scratch containers beside
the node that made it (its own postgres and redis images, no network, CPU
and memory limits, removed after) and compare the row counts of every table
and the key count of every Redis database with the ones recorded at backup
time, as a verify_backup job. The live containers are never touched.

What to drill, exactly one of:
  RESTORE_POINT       a restore point (see 'forlockctl restore --list'), with
                      --node
  --latest            the newest restore point of each node chosen by --node,
                      -l/--selector or --all

With -l or --all every matching node is drilled in turn, one job per node
and one node at a time (a drill restores a whole copy of the database beside
the node, so a fleet drill never loads many hosts at once); a node that
fails does not stop the others. With --detach every job is submitted and
its ID printed.

The result (time, duration, counts expected and got, pass or fail with the
reason) is stored on the restore point: 'forlockctl restore --list' shows
it.

Exit codes: 0 every drill passed, 2 some failed, 1 none passed, 130
interrupted by Ctrl-C (the running job goes on), 64 a wrong command line.
`

type backupsVerifyFlags struct {
	latest bool
	jobs   jobFlags
}

func newBackupsVerifyCmd(a *app) *cobra.Command {
	var f backupsVerifyFlags
	cmd := &cobra.Command{
		Use:   "verify (RESTORE_POINT --node NODE | --latest (--node NODE | -l SELECTOR | --all))",
		Short: "Restore a restore point into scratch containers and compare its recorded counts",
		Long:  backupsVerifyHelp,
		Example: `  forlockctl backups verify --latest --node web-1
  forlockctl backups verify 18a2c3d4e5f60718293a4b5c --node web-1
  forlockctl backups verify --latest -l env=prod`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return a.verifyBackups(cmd, &f, args) },
	}
	fs := cmd.Flags()
	fs.BoolVar(&f.latest, "latest", false, "drill the node's newest restore point")
	f.jobs.registerOnly(fs, append([]string{"selector", "all"}, restoreJobFlags...)...)
	fs.Lookup("node").Usage = "the node whose restore point is drilled, by name or ID"
	fs.Lookup("selector").Usage = "with --latest: drill every node matching this label selector, one after another"
	fs.Lookup("all").Usage = "with --latest: drill every node, one after another"
	return cmd
}

func (a *app) verifyBackups(cmd *cobra.Command, f *backupsVerifyFlags, args []string) error {
	fleet := cmd.Flags().Changed("selector") || cmd.Flags().Changed("all")
	switch {
	case fleet && len(args) > 0:
		return usageErrorf("a RESTORE_POINT belongs to one node: give it with --node, or use --latest with -l/--all")
	case fleet && !f.latest:
		return usageErrorf("-l and --all drill each node's newest restore point: add --latest")
	case fleet:
		return a.verifyFleet(cmd, f)
	case !cmd.Flags().Changed("node"):
		return usageErrorf("which nodes? give --node NODE, or --latest with -l SELECTOR or --all (a drill runs beside the node that made the restore point)")
	}
	if _, err := oneNode(f.jobs.nodes); err != nil {
		return err
	}
	spec := &forlockv1.VerifyBackupSpec{Latest: f.latest}
	switch {
	case f.latest && len(args) > 0:
		return usageErrorf("--latest and a RESTORE_POINT cannot be combined: give one of them")
	case len(args) == 1:
		id := strings.TrimSpace(args[0])
		if id == "" || strings.ContainsFunc(id, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
			return usageErrorf("RESTORE_POINT %q: IDs have no spaces or control characters; see 'forlockctl restore --list'", args[0])
		}
		spec.RestorePointId = id
	case !f.latest:
		return usageErrorf("what to drill? give --latest or a RESTORE_POINT ID (see 'forlockctl restore --list')")
	}
	return a.runJob(cmd, &f.jobs, &forlockv1.JobSpec{Kind: &forlockv1.JobSpec_VerifyBackup{VerifyBackup: spec}}, taskTable)
}

// verifyFleet drills the newest restore point of every node the selector
// (or --all) picks, one job per node, one after another.
func (a *app) verifyFleet(cmd *cobra.Command, f *backupsVerifyFlags) error {
	target, err := f.jobs.target(cmd.Flags())
	if err != nil {
		return err
	}
	s, err := resolveSettings(a.conn, a.io.Getenv)
	if err != nil {
		return err
	}
	var nodes []*forlockv1.Node
	if err := a.callNodes(cmd.Context(), s, func(ctx context.Context, c forlockv1.NodeServiceClient) error {
		nodes, err = targetNodes(ctx, c, target)
		return err
	}); err != nil {
		return err
	}
	if len(nodes) == 0 {
		return errors.New("no node matches: nothing to drill")
	}
	var passed, failed []string
	for _, n := range nodes {
		one := *f
		one.jobs.nodes, one.jobs.selector, one.jobs.all = []string{n.GetId()}, "", false
		if !f.jobs.detach {
			if _, err := fmt.Fprintf(a.io.Err, "forlockctl: drilling %s (%d of %d)\n", n.GetName(), len(passed)+len(failed)+1, len(nodes)); err != nil {
				return err
			}
		}
		spec := &forlockv1.JobSpec{Kind: &forlockv1.JobSpec_VerifyBackup{VerifyBackup: &forlockv1.VerifyBackupSpec{Latest: true}}}
		err := a.runJob(cmd, &one.jobs, spec, taskTable)
		var ee *exitError
		switch {
		case err == nil:
			passed = append(passed, n.GetName())
		case errors.As(err, &ee) && ee.code == ExitInterrupted:
			return err
		default:
			failed = append(failed, fmt.Sprintf("%s (%v)", n.GetName(), err))
		}
	}
	return fleetResult(passed, failed)
}

// fleetResult is the exit code of a run over several nodes: 0 all passed,
// 2 some did, 1 none did.
func fleetResult(passed, failed []string) error {
	switch {
	case len(failed) == 0:
		return nil
	case len(passed) == 0:
		return fmt.Errorf("every drill failed: %s", strings.Join(failed, "; "))
	}
	return &exitError{code: ExitJobPartial, err: fmt.Errorf("%d of %d drills failed: %s", len(failed), len(passed)+len(failed), strings.Join(failed, "; "))}
}
