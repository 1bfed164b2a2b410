package commands

import (
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

const backupsVerifyHelp = `Run a restore drill: restore a restore point into scratch containers beside
the node that made it (its own postgres and redis images, no network, CPU
and memory limits, removed after) and compare the row counts of every table
and the key count of every Redis database with the ones recorded at backup
time, as a verify_backup job. The live containers are never touched.

What to drill, exactly one of:
  RESTORE_POINT       a restore point (see 'forlockctl restore --list')
  --latest            the node's newest restore point

The result (time, duration, counts expected and got, pass or fail with the
reason) is stored on the restore point: 'forlockctl restore --list' shows
it. One node per run (--node).

Exit codes: 0 passed, 1 failed, 130 interrupted by Ctrl-C (the job keeps
running), 64 a wrong command line.
`

type backupsVerifyFlags struct {
	latest bool
	jobs   jobFlags
}

func newBackupsVerifyCmd(a *app) *cobra.Command {
	var f backupsVerifyFlags
	cmd := &cobra.Command{
		Use:   "verify (RESTORE_POINT | --latest) --node NODE",
		Short: "Restore a restore point into scratch containers and compare its recorded counts",
		Long:  backupsVerifyHelp,
		Example: `  forlockctl backups verify --latest --node web-1
  forlockctl backups verify 18a2c3d4e5f60718293a4b5c --node web-1`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return a.verifyBackups(cmd, &f, args) },
	}
	fs := cmd.Flags()
	fs.BoolVar(&f.latest, "latest", false, "drill the node's newest restore point")
	jf := pflag.NewFlagSet("job", pflag.ContinueOnError)
	f.jobs.register(jf)
	for _, name := range restoreJobFlags {
		fs.AddFlag(jf.Lookup(name))
	}
	fs.Lookup("node").Usage = "the node whose restore point is drilled, by name or ID (exactly one)"
	return cmd
}

func (a *app) verifyBackups(cmd *cobra.Command, f *backupsVerifyFlags, args []string) error {
	if !cmd.Flags().Changed("node") {
		return usageErrorf("which node? give --node NODE (a drill runs beside the node that made the restore point)")
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
