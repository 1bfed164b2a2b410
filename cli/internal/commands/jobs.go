package commands

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

func newJobsCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "jobs",
		Aliases: []string{"job"},
		Short:   "List, inspect, watch and cancel jobs",
		Args:    cobra.ArbitraryArgs,
		RunE:    groupRun,
	}
	cmd.AddCommand(newJobsListCmd(a), newJobsGetCmd(a), newJobsWatchCmd(a), newJobsCancelCmd(a))
	return cmd
}

func newJobsListCmd(a *app) *cobra.Command {
	var (
		node, kind, since, until, pageToken string
		states                              []string
		limit                               uint32
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List jobs, newest first, filtered and paged",
		Long: `List jobs, newest first. TASKS counts ok/failed/skipped/total: failed includes
interrupted tasks, skipped includes cancelled ones.

--since and --until take a duration back from now (90m, 24h) or an RFC 3339
time.`,
		Example: `  forlockctl jobs list --state failed,partially-failed --since 24h
  forlockctl jobs list --node web-1 --kind health_check --limit 10`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := parseJobStates(states)
			if err != nil {
				return err
			}
			now := a.now()
			after, err := parseTimeFlag("since", since, now)
			if err != nil {
				return err
			}
			before, err := parseTimeFlag("until", until, now)
			if err != nil {
				return err
			}
			if after != nil && before != nil && !after.AsTime().Before(before.AsTime()) {
				return usageErrorf("--since %s is not before --until %s: swap them or widen the range", since, until)
			}
			if cmd.Flags().Changed("limit") && (limit < 1 || limit > 1000) {
				return usageErrorf("--limit %d: give a number from 1 to 1000", limit)
			}
			req := &forlockv1.ListJobsRequest{Node: node, Kind: kind, States: st, CreatedAfter: after,
				CreatedBefore: before, PageSize: limit, PageToken: pageToken}
			return a.withJobClient(cmd, func(ctx context.Context, s settings, c forlockv1.JobServiceClient) error {
				ctx, cancel := context.WithTimeout(ctx, s.timeout)
				defer cancel()
				resp, err := c.ListJobs(ctx, req)
				if err != nil {
					return err
				}
				if a.output == outputJSON {
					return printJSON(a.io.Out, resp)
				}
				if len(resp.GetJobs()) == 0 {
					_, err := fmt.Fprintln(a.io.Err, "no jobs match")
					return err
				}
				if err := printJobTable(a.io.Out, now, resp.GetJobs()); err != nil {
					return err
				}
				if t := resp.GetNextPageToken(); t != "" {
					fmt.Fprintf(a.io.Err, "more jobs: repeat the command with --page-token %s\n", t)
				}
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&node, "node", "", "only jobs with a task on this node (name or ID)")
	f.StringVar(&kind, "kind", "", "only jobs of this kind, e.g. health_check")
	f.StringSliceVar(&states, "state", nil, "only jobs in these states: "+jobStateList)
	f.StringVar(&since, "since", "", "only jobs created at or after this time (duration back from now, or RFC 3339)")
	f.StringVar(&until, "until", "", "only jobs created before this time (duration back from now, or RFC 3339)")
	f.Uint32Var(&limit, "limit", 0, "at most this many jobs, 1-1000 (default 50)")
	f.StringVar(&pageToken, "page-token", "", "continue a listing from the token it printed")
	return cmd
}

func newJobsGetCmd(a *app) *cobra.Command {
	var history bool
	cmd := &cobra.Command{
		Use:   "get ID",
		Short: "Show one job with its tasks and, with --history, its events",
		Args:  exactArg("job ID (see 'forlockctl jobs list')"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withJobClient(cmd, func(ctx context.Context, s settings, c forlockv1.JobServiceClient) error {
				ctx, cancel := context.WithTimeout(ctx, s.timeout)
				defer cancel()
				resp, err := c.GetJob(ctx, &forlockv1.GetJobRequest{Id: args[0], IncludeHistory: history})
				if err != nil {
					return err
				}
				if a.output == outputJSON {
					return printJSON(a.io.Out, resp)
				}
				if err := printJobDetail(a.io.Out, a.now(), resp.GetJob()); err != nil {
					return err
				}
				if !history {
					return nil
				}
				if _, err := fmt.Fprintln(a.io.Out, "\nHistory:"); err != nil {
					return fmt.Errorf("write output: %w", err)
				}
				return printHistory(a.io.Out, resp.GetHistory())
			})
		},
	}
	cmd.Flags().BoolVar(&history, "history", false, "also list every recorded event")
	return cmd
}

func newJobsWatchCmd(a *app) *cobra.Command {
	var fromStart bool
	cmd := &cobra.Command{
		Use:   "watch ID",
		Short: "Follow a job with live per-node progress until it ends",
		Long: `Follow a job until it ends, then print its final per-task table (with -o json,
only the final job). A broken watch (control plane restart) is resumed by
itself. Ctrl-C stops watching; the job keeps running.

Exit codes: 0 every task succeeded, 2 some failed, 1 none succeeded or the
job was cancelled, 130 interrupted.`,
		Args: exactArg("job ID (see 'forlockctl jobs list')"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withJobClient(cmd, func(ctx context.Context, s settings, c forlockv1.JobServiceClient) error {
				return a.follow(ctx, s, c, args[0], fromStart, taskTable)
			})
		},
	}
	cmd.Flags().BoolVar(&fromStart, "from-start", false, "replay the job's events from the first one")
	return cmd
}

func newJobsCancelCmd(a *app) *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:   "cancel ID",
		Short: "Cancel a job: queued tasks end at once, running ones are stopped on their nodes",
		Args:  exactArg("job ID (see 'forlockctl jobs list')"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withJobClient(cmd, func(ctx context.Context, s settings, c forlockv1.JobServiceClient) error {
				ctx, cancel := context.WithTimeout(ctx, s.timeout)
				defer cancel()
				resp, err := c.CancelJob(ctx, &forlockv1.CancelJobRequest{Id: args[0], Reason: reason})
				if err != nil {
					return err
				}
				if a.output == outputJSON {
					return printJSON(a.io.Out, resp)
				}
				j := resp.GetJob()
				_, err = fmt.Fprintf(a.io.Out, "Cancelled job %s (now %s, tasks ok/failed/skipped/total %s). Running tasks stop on their nodes; follow with 'forlockctl jobs watch %s'.\n",
					j.GetId(), jobStateName(j.GetState()), countTasks(j.GetTasks()), j.GetId())
				return err
			})
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why, kept in the job's record")
	return cmd
}
