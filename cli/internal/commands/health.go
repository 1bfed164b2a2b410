package commands

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

const healthHelp = `Run the agents' health checks on a set of nodes now, as a health_check job,
and print one line per node and check (NODE, CHECK, STATUS, MESSAGE), then
the nodes' containers when any are reported. With -o json stdout holds only
the final job.

With --cached no job runs: the table shows the latest report each node sent
with its heartbeats, and how old it is (-o json: the nodes).

Exit codes: 0 no check is CRITICAL (WARN is allowed); 2 some nodes have a
CRITICAL check or failed; 1 every node did, or the job was cancelled; 130
interrupted (the job keeps running); 64 a wrong command line. With
--cached: 0, or 2 when any check is CRITICAL.

`

// newHealthCmd builds "health" and, with legacy, "health-check": the same
// command, whose final table stays the per-task table of the job commands
// (with each check as a detail line) for the scripts written against it.
func newHealthCmd(a *app, legacy bool) *cobra.Command {
	var (
		f      jobFlags
		cached bool
	)
	cmd := &cobra.Command{
		Use:   "health",
		Short: "Run the nodes' health checks now (or show the last reported ones) and print them",
		Long:  healthHelp + jobFlagsHelp,
		Example: `  forlockctl health --all
  forlockctl health -l env=prod --max-parallel 5 --offline skip
  forlockctl health --node web-1 --cached
  forlockctl health --all -o json | jq '.tasks[].health.checks[]'`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cached {
				return a.cachedHealth(cmd, &f)
			}
			spec := &forlockv1.JobSpec{Kind: &forlockv1.JobSpec_HealthCheck{HealthCheck: &forlockv1.HealthCheckSpec{}}}
			fin := a.healthTable()
			if legacy {
				fin = taskTable
			}
			return a.runJob(cmd, &f, spec, fin)
		},
	}
	if legacy {
		cmd.Use = "health-check"
		cmd.Short = "Like 'health', with the per-task table of 'jobs watch' (kept for scripts)"
	}
	f.register(cmd.Flags())
	cmd.Flags().BoolVar(&cached, "cached", false, "show the last report of each node's heartbeats instead of running the checks")
	return cmd
}

// healthTable ends a health_check watch with the check and container
// tables; a CRITICAL check fails the command even if its task succeeded.
func (a *app) healthTable() finisher {
	return finisher{
		print: func(w io.Writer, j *forlockv1.Job) error {
			if err := printJobSummary(w, j); err != nil {
				return err
			}
			var rows []checkRow
			var sets []nodeContainers
			for _, t := range j.GetTasks() {
				rows = append(rows, taskRows(t)...)
				sets = append(sets, nodeContainers{node: t.GetNodeName(), containers: t.GetHealth().GetContainers()})
			}
			if err := printHealthTable(w, rows, false, a.colour()); err != nil {
				return err
			}
			return printContainerTable(w, a.now(), sets)
		},
		result: healthResult,
	}
}

// healthResult is the job's result, made worse when a task succeeded
// although its report holds a CRITICAL check.
func healthResult(j *forlockv1.Job) error {
	if err := jobResult(j); err != nil {
		return err
	}
	bad := 0
	for _, t := range j.GetTasks() {
		if hasCritical(taskRows(t)) {
			bad++
		}
	}
	if bad == 0 {
		return nil
	}
	code := ExitJobPartial
	if bad == len(j.GetTasks()) {
		code = ExitFailure
	}
	return &exitError{code: code, err: fmt.Errorf("job %s: %d of %d nodes report CRITICAL checks", j.GetId(), bad, len(j.GetTasks()))}
}

// cachedHealth shows the nodes' latest heartbeat reports.
func (a *app) cachedHealth(cmd *cobra.Command, f *jobFlags) error {
	var jobOnly []string
	for _, name := range []string{"max-parallel", "canary", "stop-after-failures", "deadline", "offline", "idempotency-key", "detach"} {
		if cmd.Flags().Changed(name) {
			jobOnly = append(jobOnly, "--"+name)
		}
	}
	if len(jobOnly) > 0 {
		return usageErrorf("--cached runs no job: drop %s", strings.Join(jobOnly, ", "))
	}
	target, err := f.target(cmd.Flags())
	if err != nil {
		return err
	}
	return a.withNodeClient(cmd, func(ctx context.Context, c forlockv1.NodeServiceClient) error {
		nodes, err := targetNodes(ctx, c, target)
		if err != nil {
			return err
		}
		if a.output == outputJSON {
			if err := printJSON(a.io.Out, &forlockv1.ListNodesResponse{Nodes: nodes}); err != nil {
				return err
			}
		} else if err := a.printCachedHealth(nodes); err != nil {
			return err
		}
		return cachedResult(nodes)
	})
}

func (a *app) printCachedHealth(nodes []*forlockv1.Node) error {
	if len(nodes) == 0 {
		_, err := fmt.Fprintln(a.io.Err, "no nodes match")
		return err
	}
	now := a.now()
	var rows []checkRow
	var sets []nodeContainers
	for _, n := range nodes {
		rows = append(rows, nodeRows(now, n)...)
		sets = append(sets, nodeContainers{node: n.GetName(), containers: n.GetHealth().GetContainers()})
	}
	if err := printHealthTable(a.io.Out, rows, true, a.colour()); err != nil {
		return err
	}
	return printContainerTable(a.io.Out, now, sets)
}

// cachedResult fails with ExitJobPartial when a report holds a CRITICAL
// check.
func cachedResult(nodes []*forlockv1.Node) error {
	var bad []string
	for _, n := range nodes {
		for _, c := range n.GetHealth().GetChecks() {
			if c.GetStatus() == forlockv1.CheckStatus_CHECK_STATUS_CRITICAL {
				bad = append(bad, n.GetName()+" "+c.GetName())
			}
		}
	}
	if len(bad) == 0 {
		return nil
	}
	return &exitError{code: ExitJobPartial, err: fmt.Errorf("CRITICAL in the last reports: %s", strings.Join(bad, ", "))}
}

// targetNodes fetches the nodes a job target names: by name or ID, by
// selector, or all.
func targetNodes(ctx context.Context, c forlockv1.NodeServiceClient, t *forlockv1.Target) ([]*forlockv1.Node, error) {
	if len(t.GetNodes()) == 0 {
		resp, err := c.ListNodes(ctx, &forlockv1.ListNodesRequest{LabelSelector: t.GetLabelSelector()})
		if err != nil {
			return nil, err
		}
		return resp.GetNodes(), nil
	}
	nodes := make([]*forlockv1.Node, 0, len(t.GetNodes()))
	for _, name := range t.GetNodes() {
		resp, err := c.GetNode(ctx, &forlockv1.GetNodeRequest{Node: name})
		if err != nil {
			return nil, err
		}
		nodes = append(nodes, resp.GetNode())
	}
	return nodes, nil
}
