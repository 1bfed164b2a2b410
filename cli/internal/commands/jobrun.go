package commands

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
	"unicode"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"
	"google.golang.org/protobuf/types/known/durationpb"

	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// jobFlags are the flags of every command that runs a job: which nodes, how
// to roll out, and whether to wait.
type jobFlags struct {
	nodes       []string
	selector    string
	all         bool
	maxParallel uint32
	canary      uint32
	stopAfter   uint32
	deadline    time.Duration
	offline     string
	idemKey     string
	detach      bool
}

// Limits checked before any call; the control plane checks them too.
const (
	maxDeadline  = 7 * 24 * time.Hour
	maxIdemKey   = 128
	targetUsage  = "choose the nodes with exactly one of --node NAME (repeatable), -l/--selector SELECTOR or --all"
	jobFlagsHelp = `Target (exactly one): --node NAME (repeatable), -l/--selector SELECTOR, --all.

Unless --detach is given, the command watches the job with live per-node
progress and prints the final per-task table (with -o json, only the final
job). Exit codes: 0 every task succeeded, 2 some failed, 1 none succeeded or
the job was cancelled, 130 interrupted by Ctrl-C: the job keeps running, see
'forlockctl jobs watch ID'. A broken watch (control plane restart) is
resumed by itself.`
)

func (f *jobFlags) register(fs *pflag.FlagSet) {
	fs.StringSliceVar(&f.nodes, "node", nil, "target node name or ID (repeatable, or comma-separated)")
	fs.StringVarP(&f.selector, "selector", "l", "", "target the nodes matching a label selector: key=value, key!=value, key, !key")
	fs.BoolVar(&f.all, "all", false, "target every registered node")
	fs.Uint32Var(&f.maxParallel, "max-parallel", 0, "at most this many tasks at once (0: no limit)")
	fs.Uint32Var(&f.canary, "canary", 0, "run this many tasks first; the rest start only if they all succeed")
	fs.Uint32Var(&f.stopAfter, "stop-after-failures", 0, "skip the tasks not yet started after this many failures (0: never)")
	fs.DurationVar(&f.deadline, "deadline", 0, "skip tasks not started this long after submit (default 1h, at most 168h)")
	fs.StringVar(&f.offline, "offline", "wait", "tasks of offline nodes: wait (until the node connects or the deadline) or skip")
	fs.StringVar(&f.idemKey, "idempotency-key", "", "submit at most once: a repeat with the same key returns the first job")
	fs.BoolVar(&f.detach, "detach", false, "print the job ID and return without watching")
}

// registerOnly adds to fs only the job flags named, for commands that take
// a few of them (a restore targets one node, with no rollout).
func (f *jobFlags) registerOnly(fs *pflag.FlagSet, names ...string) {
	all := pflag.NewFlagSet("job", pflag.ContinueOnError)
	f.register(all)
	for _, name := range names {
		fs.AddFlag(all.Lookup(name))
	}
}

// request validates the flags and builds the SubmitJob request for spec.
func (f *jobFlags) request(fs *pflag.FlagSet, spec *forlockv1.JobSpec) (*forlockv1.SubmitJobRequest, error) {
	target, err := f.target(fs)
	if err != nil {
		return nil, err
	}
	rollout, err := f.rollout()
	if err != nil {
		return nil, err
	}
	if err := validateIdemKey(f.idemKey); err != nil {
		return nil, err
	}
	return &forlockv1.SubmitJobRequest{Spec: spec, Target: target, Rollout: rollout, IdempotencyKey: f.idemKey}, nil
}

func (f *jobFlags) target(fs *pflag.FlagSet) (*forlockv1.Target, error) {
	var given []string
	for _, name := range []string{"node", "selector", "all"} {
		if fs.Changed(name) {
			given = append(given, "--"+name)
		}
	}
	switch {
	case len(given) == 0:
		return nil, usageErrorf("no target: %s", targetUsage)
	case len(given) > 1:
		return nil, usageErrorf("%s cannot be combined: %s", strings.Join(given, " and "), targetUsage)
	case fs.Changed("all"):
		if !f.all {
			return nil, usageErrorf("--all=false selects no nodes: %s", targetUsage)
		}
		return &forlockv1.Target{All: true}, nil
	case fs.Changed("selector"):
		if f.selector == "" {
			return nil, usageErrorf("empty label selector: give one, or use --all for every node")
		}
		if err := validateSelector(f.selector); err != nil {
			return nil, err
		}
		return &forlockv1.Target{LabelSelector: f.selector}, nil
	}
	var nodes []string
	for _, n := range f.nodes {
		n = strings.TrimSpace(n)
		if n == "" {
			return nil, usageErrorf("--node: empty node name: give a node name or ID")
		}
		nodes = append(nodes, n)
	}
	if len(nodes) == 0 {
		return nil, usageErrorf("--node: empty node name: give a node name or ID")
	}
	return &forlockv1.Target{Nodes: nodes}, nil
}

func (f *jobFlags) rollout() (*forlockv1.Rollout, error) {
	r := &forlockv1.Rollout{MaxParallel: f.maxParallel, Canary: f.canary, StopAfterFailures: f.stopAfter}
	switch {
	case f.deadline < 0:
		return nil, usageErrorf("--deadline %s: give a positive duration, e.g. --deadline 30m", f.deadline)
	case f.deadline > maxDeadline:
		return nil, usageErrorf("--deadline %s: at most %s (7 days)", f.deadline, maxDeadline)
	case f.deadline > 0:
		r.Deadline = durationpb.New(f.deadline)
	}
	switch strings.ToLower(f.offline) {
	case "wait":
		r.OfflinePolicy = forlockv1.OfflinePolicy_OFFLINE_POLICY_WAIT
	case "skip":
		r.OfflinePolicy = forlockv1.OfflinePolicy_OFFLINE_POLICY_SKIP
	default:
		return nil, usageErrorf("--offline %q: use wait (queue until the node connects) or skip", f.offline)
	}
	return r, nil
}

func validateIdemKey(k string) error {
	if len(k) > maxIdemKey {
		return usageErrorf("--idempotency-key: %d characters, use at most %d", len(k), maxIdemKey)
	}
	if strings.ContainsFunc(k, func(r rune) bool { return !unicode.IsPrint(r) || r > unicode.MaxASCII }) {
		return usageErrorf("--idempotency-key %q: use printable ASCII characters only", k)
	}
	return nil
}

// finisher shows a followed job once it has ended and turns it into the
// command's result.
type finisher struct {
	// print writes the final table; it is not called with -o json.
	print func(w io.Writer, j *forlockv1.Job) error
	// result is nil for success or an error carrying the exit code.
	result func(j *forlockv1.Job) error
}

// taskTable is the default end of a watch: the summary line, the per-task
// table with details, and the job's exit code.
var taskTable = finisher{
	print: func(w io.Writer, j *forlockv1.Job) error {
		if err := printJobSummary(w, j); err != nil {
			return err
		}
		return printTaskTable(w, j.GetTasks())
	},
	result: jobResult,
}

// runJob submits a job built from the flags and spec, then, unless
// --detach, follows it to its end and shows it with fin. Every
// long-running command calls it.
func (a *app) runJob(cmd *cobra.Command, f *jobFlags, spec *forlockv1.JobSpec, fin finisher) error {
	req, err := f.request(cmd.Flags(), spec)
	if err != nil {
		return err
	}
	s, err := resolveSettings(a.conn, a.io.Getenv)
	if err != nil {
		return err
	}
	return a.callJobs(cmd.Context(), s, func(ctx context.Context, c forlockv1.JobServiceClient) error {
		uctx, cancel := context.WithTimeout(ctx, s.timeout)
		resp, err := c.SubmitJob(uctx, req)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return &exitError{code: ExitInterrupted, err: errors.New(
					"interrupted before the control plane confirmed the job: it may exist anyway, see 'forlockctl jobs list' (an --idempotency-key makes a retry safe)")}
			}
			return err
		}
		job := resp.GetJob()
		if !resp.GetCreated() {
			fmt.Fprintf(a.io.Err, "forlockctl: idempotency key %q was used before: following its job %s (created %s)\n",
				req.GetIdempotencyKey(), job.GetId(), age(a.now(), job.GetCreatedAt()))
		}
		if f.detach {
			if a.output == outputJSON {
				return printJSON(a.io.Out, job)
			}
			_, err := fmt.Fprintln(a.io.Out, job.GetId())
			return err
		}
		return a.follow(ctx, s, c, job.GetId(), true, fin)
	})
}

// follow watches a job to its end with a live view, prints the final job
// (as JSON, or with fin), and turns it into the exit code with fin. Ctrl-C
// stops the watch, never the job.
func (a *app) follow(ctx context.Context, s settings, c forlockv1.JobServiceClient, id string, fromStart bool, fin finisher) error {
	view, stop := a.liveView(id)
	fl := &follower{src: grpcJobSource{c: c, id: id, timeout: s.timeout}, view: view, fromStart: fromStart}
	job, err := fl.run(ctx)
	if ctx.Err() != nil {
		stop(false)
		return &exitError{code: ExitInterrupted, err: fmt.Errorf("job %s keeps running; forlockctl jobs watch %s", id, id)}
	}
	stop(true)
	if err != nil {
		return err
	}
	if a.output == outputJSON {
		err = printJSON(a.io.Out, job)
	} else {
		err = fin.print(a.io.Out, job)
	}
	if err != nil {
		return err
	}
	return fin.result(job)
}

// liveView picks how a watch is shown: redrawn in place on a terminal, one
// line per event otherwise. With -o json stdout is kept for the final job
// and the live view goes to stderr.
func (a *app) liveView(id string) (jobView, func(erase bool)) {
	w := a.io.Out
	if a.output == outputJSON {
		w = a.io.Err
	}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		v := newTTYView(w, func() (int, int) {
			width, height, err := term.GetSize(int(f.Fd()))
			if err != nil {
				return 80, 24
			}
			return width, height
		})
		return v, v.stop
	}
	return &lineView{out: w, errW: a.io.Err, id: id}, func(bool) {}
}

// printJobSummary is the line above the final task table.
func printJobSummary(w io.Writer, j *forlockv1.Job) error {
	took := ""
	if j.GetCreatedAt() != nil && j.GetFinishedAt() != nil {
		took = " in " + shortDuration(j.GetFinishedAt().AsTime().Sub(j.GetCreatedAt().AsTime()))
	}
	_, err := fmt.Fprintf(w, "\njob %s %s %s%s: tasks ok/failed/skipped/total %s\n",
		j.GetId(), orDash(j.GetKind()), jobStateName(j.GetState()), took, countTasks(j.GetTasks()))
	if err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return nil
}
