package commands

import (
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"google.golang.org/protobuf/types/known/durationpb"

	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

const upgradeHelp = `Upgrade the Forlock services of a set of nodes to a new image, as an upgrade
job, or return them to an earlier release with --rollback.

Per node, the agent:
  1. backs the node up (PostgreSQL, Redis, config; cataloged and linked to
     the job), and refuses to go on if that fails, unless --skip-backup;
  2. records the running release (each service's image digest and container
     configuration) in the node's release history;
  3. pulls every new image (with the registry credentials of its config):
     a failed pull changes nothing;
  4. recreates each service with its identical configuration and the new
     image, in the order postgres, redis, api, nginx, and waits until it is
     healthy (its Docker healthcheck, and the Forlock API's health endpoint)
     within --health-timeout;
  5. on any failure puts the previous containers back and ends the task
     ROLLED_BACK with the reason.

SERVICE... limits the upgrade to some of postgres, redis, api, nginx (default
all). --to is a tag (v2.4.1) or a digest (sha256:...), applied to each
service's current image repository.

Across the fleet, upgrades halt on the first failure by default: tasks not
yet started are skipped (--stop-after-failures changes that). --canary N
upgrades N nodes first and the rest only if they all succeed; --max-parallel
M upgrades at most M nodes at once.

--rollback returns each node to the release before its current one (or to
--release ID, from 'forlockctl nodes get NODE'), with the same health gate.
A PostgreSQL major-version upgrade cannot be undone by swapping images:
restore the pre-upgrade backup instead ('forlockctl restore').

`

type upgradeFlags struct {
	to            string
	skipBackup    bool
	rollback      bool
	release       string
	healthTimeout time.Duration
	dest          string
	bucket        string
	prefix        string
	jobFlags      jobFlags
}

var (
	cliImageTag  = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)
	cliDigest    = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)
	cliReleaseID = regexp.MustCompile(`^[0-9a-f]{12,64}$`)
	upgradeSvcs  = []string{"postgres", "redis", "api", "nginx"}
)

func newUpgradeCmd(a *app) *cobra.Command {
	var f upgradeFlags
	cmd := &cobra.Command{
		Use:   "upgrade [SERVICE...] (--to TAG|DIGEST | --rollback)",
		Short: "Upgrade nodes to a new image, health-gated with automatic rollback; or roll back",
		Long:  upgradeHelp + jobFlagsHelp,
		Example: `  forlockctl upgrade --to v2.4.1 --all --canary 1 --max-parallel 2
  forlockctl upgrade api --to v2.4.1 --node web-1
  forlockctl upgrade --to sha256:4f1c... -l env=staging --skip-backup
  forlockctl upgrade --rollback --node web-1
  forlockctl upgrade --rollback --release 3a9f0c2b71de --node web-1`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			spec, err := f.spec(cmd.Flags(), args)
			if err != nil {
				return err
			}
			if !cmd.Flags().Changed("stop-after-failures") {
				f.jobFlags.stopAfter = 1 // halt the rollout on the first failure
			}
			return a.runJob(cmd, &f.jobFlags, spec, upgradeTable)
		},
	}
	fs := cmd.Flags()
	f.jobFlags.register(fs)
	fs.Lookup("stop-after-failures").Usage = "skip the nodes not yet started after this many failures (default 1 for upgrades; 0: never)"
	fs.StringVar(&f.to, "to", "", "the new image: a tag or a digest (sha256:...)")
	fs.BoolVar(&f.skipBackup, "skip-backup", false, "do not back up first")
	fs.BoolVar(&f.rollback, "rollback", false, "return to the release before the current one (or --release)")
	fs.StringVar(&f.release, "release", "", "with --rollback: the release ID to return to")
	fs.DurationVar(&f.healthTimeout, "health-timeout", 0, "how long each service may take to become healthy (default 2m, at most 30m)")
	fs.StringVar(&f.dest, "dest", "", "the pre-upgrade backup's directory on each host (default: the agent's)")
	fs.StringVar(&f.bucket, "s3", "", "write the pre-upgrade backup to this bucket of each agent's S3 store")
	fs.StringVar(&f.prefix, "s3-prefix", "", "key prefix inside the --s3 bucket")
	return cmd
}

// spec validates the upgrade command line into a job spec.
func (f *upgradeFlags) spec(fs *pflag.FlagSet, services []string) (*forlockv1.JobSpec, error) {
	if f.healthTimeout < 0 || f.healthTimeout > 30*time.Minute {
		return nil, usageErrorf("--health-timeout %s: give up to 30m", f.healthTimeout)
	}
	var timeout *durationpb.Duration
	if f.healthTimeout > 0 {
		timeout = durationpb.New(f.healthTimeout)
	}
	if f.rollback {
		for _, name := range []string{"to", "skip-backup", "dest", "s3", "s3-prefix"} {
			if fs.Changed(name) {
				return nil, usageErrorf("--rollback takes no --%s: it returns to a recorded release", name)
			}
		}
		if len(services) > 0 {
			return nil, usageErrorf("--rollback returns every service of the release: give no SERVICE")
		}
		if f.release != "" && !cliReleaseID.MatchString(f.release) {
			return nil, usageErrorf("--release %q: a release ID is hex, as 'forlockctl nodes get NODE' shows it", f.release)
		}
		return &forlockv1.JobSpec{Kind: &forlockv1.JobSpec_Rollback{Rollback: &forlockv1.RollbackSpec{
			ReleaseId: f.release, HealthTimeout: timeout}}}, nil
	}
	if fs.Changed("release") {
		return nil, usageErrorf("--release goes with --rollback")
	}
	if f.to == "" {
		return nil, usageErrorf("which version? give --to TAG or --to sha256:DIGEST (or --rollback)")
	}
	if !cliImageTag.MatchString(f.to) && !cliDigest.MatchString(f.to) {
		return nil, usageErrorf("--to %q: give an image tag (letters, digits, '_', '.', '-') or a digest sha256:<64 hex>", f.to)
	}
	for _, s := range services {
		if !slices.Contains(upgradeSvcs, s) {
			return nil, usageErrorf("unknown service %q: use %s", s, strings.Join(upgradeSvcs, ", "))
		}
	}
	if f.skipBackup && (fs.Changed("dest") || fs.Changed("s3")) {
		return nil, usageErrorf("--skip-backup makes no backup: drop --dest/--s3")
	}
	dest, err := destination(fs, f.dest, f.bucket, f.prefix)
	if err != nil {
		return nil, err
	}
	return &forlockv1.JobSpec{Kind: &forlockv1.JobSpec_Upgrade{Upgrade: &forlockv1.UpgradeSpec{
		Services: services, To: f.to, SkipBackup: f.skipBackup, BackupDestination: dest, HealthTimeout: timeout}}}, nil
}

// upgradeTable ends an upgrade watch: the task table, then per node the
// release before and after, and why it was rolled back.
var upgradeTable = finisher{
	print: func(w io.Writer, j *forlockv1.Job) error {
		if err := printJobSummary(w, j); err != nil {
			return err
		}
		if err := printTaskTable(w, j.GetTasks()); err != nil {
			return err
		}
		return printUpgradeResults(w, j.GetTasks())
	},
	result: jobResult,
}

func printUpgradeResults(w io.Writer, tasks []*forlockv1.Task) error {
	tw := newTable(w)
	header := false
	for _, t := range tasks {
		u := t.GetUpgrade()
		if u == nil {
			continue
		}
		if !header {
			fmt.Fprintln(tw, "\nNODE\tBEFORE\tAFTER\tAPI DOWN\tBACKUP\tNOTE")
			header = true
		}
		note := ""
		if u.GetRolledBack() {
			note = "rolled back: " + u.GetReason()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", t.GetNodeName(), releaseSummary(u.GetBefore()), releaseSummary(u.GetAfter()),
			u.GetApiUnavailable().AsDuration().Round(time.Millisecond), orDash(u.GetBackupRestorePointId()), orDash(note))
	}
	return tw.Flush()
}

// releaseSummary is a release ID with its api image, e.g.
// "3a9f0c2b71de (api v2)".
func releaseSummary(r *forlockv1.Release) string {
	if r == nil || r.GetId() == "" {
		return "-"
	}
	id := r.GetId()
	if len(id) > 12 {
		id = id[:12]
	}
	for _, s := range r.GetServices() {
		if s.GetService() == "api" {
			return fmt.Sprintf("%s (api %s)", id, imageTagOf(s.GetImage()))
		}
	}
	return id
}

// imageTagOf is the tag or digest part of an image reference.
func imageTagOf(ref string) string {
	if i := strings.LastIndex(ref, "@"); i >= 0 {
		d := ref[i+1:]
		if len(d) > 19 {
			d = d[:19]
		}
		return d
	}
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		return ref[i+1:]
	}
	return "latest"
}
