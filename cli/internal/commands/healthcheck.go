package commands

import (
	"github.com/spf13/cobra"

	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

func newHealthCheckCmd(a *app) *cobra.Command {
	var f jobFlags
	cmd := &cobra.Command{
		Use:   "health-check",
		Short: "Run the agents' host health checks on a set of nodes",
		Long: "Run each target node's host health checks (disk, memory, ...) as a job and\n" +
			"show every check's result under its node.\n\n" + jobFlagsHelp,
		Example: `  forlockctl health-check --all
  forlockctl health-check -l env=prod --max-parallel 5 --offline skip
  forlockctl health-check --node web-1 --node web-2 --detach`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			spec := &forlockv1.JobSpec{Kind: &forlockv1.JobSpec_HealthCheck{HealthCheck: &forlockv1.HealthCheckSpec{}}}
			return a.runJob(cmd, &f, spec)
		},
	}
	f.register(cmd.Flags())
	return cmd
}
