package commands

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

const restoreHelp = `Restore one node's Forlock stack from the backup catalog, as a restore job,
or list the catalog's restore points with --list.

What to restore, exactly one of:
  --to-time T           the node's PostgreSQL as it was at T (point-in-time
                        restore): the newest physical base backup that ended
                        before T, then the archived WAL replayed up to T. T is
                        RFC 3339 ("2026-12-03T18:02:11Z", any offset) or
                        "2026-12-03 18:02:11", which is read as UTC
  --to-latest           the node's PostgreSQL as of the newest archived WAL
                        (point-in-time restore to the end of the archive)
  --latest              the newest restore point of the node (or, with
                        --from-node M, of node M: disaster recovery onto
                        another node; M's artifacts must be on storage this
                        node can read, i.e. S3)
  RESTORE_POINT         one restore point ID, as 'restore --list' shows it
  ARTIFACT_ID...        one or more artifact IDs, e.g. <restore point>-postgres

Positional IDs are looked up with 'backups get' first: every ID that is an
artifact is restored as one; a single ID that is no artifact is taken as a
restore point ID, and the control plane refuses it if it is neither. --only
keeps only some kinds of the chosen artifacts.

A point-in-time restore restores PostgreSQL only. The control plane refuses
it before anything stops when the WAL needed to reach the target is missing,
naming the gap, or when no base backup precedes it; 'restore --list' shows
each node's recoverable window. Base backups are physical backups: take one
with 'forlockctl backup --pg-format physical' or schedule them (backup_schedules with
pg_format: physical in the control plane's config).

The restore is destructive: the agent verifies every artifact's checksum
and decryptability first, then stops the API, replaces the PostgreSQL
database and the Redis data (and config) with the backup's, starts the API
and checks its health. It asks for confirmation when standard input is a
terminal; otherwise --yes is required.

Unless --detach is given, the command watches the job and prints the task
table and the artifacts restored. Exit codes: 0 restored, 1 the restore
failed or was cancelled, 130 interrupted by Ctrl-C (the job keeps running,
see 'forlockctl jobs watch ID'), 64 a wrong command line.
`

// restoreFlags are the flags of restore; jobs holds only --node and the
// job flags that make sense for a single node.
type restoreFlags struct {
	list     bool
	latest   bool
	only     []string
	fromNode string
	toTime   string
	toLatest bool
	yes      bool
	jobs     jobFlags
}

// restoreJobFlags are the job flags restore takes from jobFlags.
var restoreJobFlags = []string{"node", "deadline", "offline", "idempotency-key", "detach"}

func newRestoreCmd(a *app) *cobra.Command {
	var f restoreFlags
	cmd := &cobra.Command{
		Use:   "restore (--latest | RESTORE_POINT | ARTIFACT_ID...) --node NODE",
		Short: "Restore a node from a backup, or list the restore points (--list)",
		Long:  restoreHelp,
		Example: `  forlockctl restore --list
  forlockctl restore --list --node web-1 -o json
  forlockctl restore --latest --node web-1
  forlockctl restore 18a2c3d4e5f60718293a4b5c --node web-1 --only postgres --yes
  forlockctl restore 18a2c3d4e5f60718293a4b5c-redis --node web-1
  forlockctl restore --latest --from-node web-1 --node web-2
  forlockctl restore --to-time '2026-12-03 18:02:11' --node web-1
  forlockctl restore --to-latest --node web-1 --yes`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if f.list {
				return a.listRestore(cmd, &f, args)
			}
			return a.restore(cmd, &f, args)
		},
	}
	fs := cmd.Flags()
	fs.BoolVar(&f.list, "list", false, "list the restore points, newest first (with --node: only that node's)")
	fs.BoolVar(&f.latest, "latest", false, "restore the newest restore point of --node (or of --from-node)")
	fs.StringSliceVar(&f.only, "only", nil, "restore only these kinds of the chosen artifacts: "+kindList+" (default all)")
	fs.StringVar(&f.fromNode, "from-node", "", "with --latest, --to-time or --to-latest: restore from this node's backups instead (disaster recovery)")
	fs.StringVar(&f.toTime, "to-time", "", `point-in-time restore of PostgreSQL to T: RFC 3339, or "YYYY-MM-DD HH:MM:SS" read as UTC`)
	fs.BoolVar(&f.toLatest, "to-latest", false, "point-in-time restore of PostgreSQL to the end of the archived WAL")
	fs.BoolVarP(&f.yes, "yes", "y", false, "do not ask for confirmation")
	f.jobs.registerOnly(fs, restoreJobFlags...)
	fs.Lookup("node").Usage = "the node to restore onto, by name or ID (exactly one); with --list, only its restore points"
	return cmd
}

// listRestore prints the catalog's restore points.
func (a *app) listRestore(cmd *cobra.Command, f *restoreFlags, args []string) error {
	if len(args) > 0 {
		return usageErrorf("--list takes no IDs (got %q): see 'forlockctl backups get ID' for one artifact", args)
	}
	var extra []string
	for _, name := range append([]string{"latest", "only", "from-node", "to-time", "to-latest", "yes"}, restoreJobFlags[1:]...) {
		if cmd.Flags().Changed(name) {
			extra = append(extra, "--"+name)
		}
	}
	if len(extra) > 0 {
		return usageErrorf("--list only shows the catalog: drop %s", strings.Join(extra, ", "))
	}
	node := ""
	if cmd.Flags().Changed("node") {
		n, err := oneNode(f.jobs.nodes)
		if err != nil {
			return err
		}
		node = n
	}
	return a.withBackupClient(cmd, func(ctx context.Context, c forlockv1.BackupServiceClient) error {
		rps, err := listRestorePoints(ctx, c, node)
		if err != nil {
			return err
		}
		windows, err := listWindows(ctx, c, node)
		if err != nil {
			return err
		}
		if a.output == outputJSON {
			return printJSONMerged(a.io.Out, &forlockv1.ListRestorePointsResponse{RestorePoints: rps}, windows)
		}
		if len(windows.GetWindows()) > 0 {
			if err := printWindowTable(a.io.Out, windows.GetWindows()); err != nil {
				return err
			}
			if _, err := fmt.Fprintln(a.io.Out); err != nil {
				return fmt.Errorf("write output: %w", err)
			}
		}
		if len(rps) == 0 {
			msg := "no restore points yet: make one with 'forlockctl backup'"
			if node != "" {
				msg = fmt.Sprintf("no restore points of node %s yet: make one with 'forlockctl backup --node %s'", node, node)
			}
			_, err := fmt.Fprintln(a.io.Err, msg)
			return err
		}
		return printRestorePointTable(a.io.Out, a.now(), rps)
	})
}

// oneNode is the single name of --node.
func oneNode(nodes []string) (string, error) {
	if len(nodes) != 1 {
		return "", usageErrorf("--node: give exactly one node (got %d): a restore targets one node", len(nodes))
	}
	n := strings.TrimSpace(nodes[0])
	if n == "" {
		return "", usageErrorf("--node: empty node name: give a node name or ID")
	}
	return n, nil
}

// restoreRequest is a restore as the command line gives it, checked.
type restoreRequest struct {
	node string
	spec *forlockv1.RestoreSpec
	ids  []string // positional IDs, still to be told apart
}

// parse validates the restore command line without any call.
func (f *restoreFlags) parse(fs *pflag.FlagSet, args []string) (*restoreRequest, error) {
	if !fs.Changed("node") {
		return nil, usageErrorf("which node to restore onto? give --node NODE (a restore targets exactly one node)")
	}
	node, err := oneNode(f.jobs.nodes)
	if err != nil {
		return nil, err
	}
	if fs.Changed("to-time") || f.toLatest {
		return f.parsePITR(fs, node, args)
	}
	switch {
	case f.latest && len(args) > 0:
		return nil, usageErrorf("--latest and IDs (%s) cannot be combined: give one of them", strings.Join(args, " "))
	case !f.latest && len(args) == 0:
		return nil, usageErrorf("what to restore? give --latest, a RESTORE_POINT ID or ARTIFACT_IDs (see 'forlockctl restore --list')")
	case fs.Changed("from-node") && !f.latest:
		return nil, usageErrorf("--from-node goes with --latest: a restore point or artifact ID already names its node")
	case fs.Changed("from-node") && strings.TrimSpace(f.fromNode) == "":
		return nil, usageErrorf("--from-node: empty node name: give a node name or ID")
	}
	for i, id := range args {
		if id == "" || strings.ContainsFunc(id, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
			return nil, usageErrorf("ID %q: IDs have no spaces or control characters; see 'forlockctl restore --list'", id)
		}
		if slices.Contains(args[:i], id) {
			return nil, usageErrorf("ID %q is given twice: give each ID once", id)
		}
	}
	only, err := parseKinds(fs, f.only)
	if err != nil {
		return nil, err
	}
	spec := &forlockv1.RestoreSpec{Latest: f.latest, Only: only, SourceNode: strings.TrimSpace(f.fromNode)}
	return &restoreRequest{node: node, spec: spec, ids: args}, nil
}

func (a *app) restore(cmd *cobra.Command, f *restoreFlags, args []string) error {
	r, err := f.parse(cmd.Flags(), args)
	if err != nil {
		return err
	}
	if !f.yes && !isTerminal(a.io.In) {
		return usageErrorf("refusing to restore node %q without confirmation: pass --yes", r.node)
	}
	s, err := resolveSettings(a.conn, a.io.Getenv)
	if err != nil {
		return err
	}
	var arts []*forlockv1.Artifact
	if len(r.ids) > 0 {
		if err := a.callBackups(cmd.Context(), s, func(ctx context.Context, c forlockv1.BackupServiceClient) error {
			arts, err = resolveIDs(ctx, c, r.spec, r.ids)
			return err
		}); err != nil {
			return err
		}
	}
	if !f.yes {
		ok, err := confirm(a.io.In, a.io.Err, restorePrompt(r, arts, s.address))
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("node %q not restored: not confirmed", r.node)
		}
	}
	spec := &forlockv1.JobSpec{Kind: &forlockv1.JobSpec_Restore{Restore: r.spec}}
	return a.runJob(cmd, &f.jobs, spec, restoreTable)
}

// resolveIDs tells positional IDs apart: each is looked up as an artifact;
// a single ID that is none is taken as a restore point ID. It fills spec
// and returns the artifacts found.
func resolveIDs(ctx context.Context, c forlockv1.BackupServiceClient, spec *forlockv1.RestoreSpec, ids []string) ([]*forlockv1.Artifact, error) {
	var arts []*forlockv1.Artifact
	for _, id := range ids {
		resp, err := c.GetArtifact(ctx, &forlockv1.GetArtifactRequest{Id: id})
		if status.Code(err) == codes.NotFound {
			if len(ids) == 1 {
				spec.RestorePointId = id
				return nil, nil
			}
			return nil, fmt.Errorf("artifact %q not found in the catalog: a restore point ID goes alone; see 'forlockctl restore --list'", id)
		}
		if err != nil {
			return nil, err
		}
		if resp.GetArtifact() == nil {
			return nil, errors.New("the control plane answered without the artifact")
		}
		arts = append(arts, resp.GetArtifact())
	}
	spec.ArtifactIds = ids
	return arts, nil
}

// restorePrompt asks before a restore, naming what is restored onto what.
func restorePrompt(r *restoreRequest, arts []*forlockv1.Artifact, addr string) string {
	var what string
	switch {
	case r.spec.GetLatest() && r.spec.GetSourceNode() != "":
		what = fmt.Sprintf("the newest restore point of node %q", r.spec.GetSourceNode())
	case r.spec.GetLatest():
		what = "its newest restore point"
	case r.spec.GetRestorePointId() != "":
		what = "restore point " + r.spec.GetRestorePointId()
	default:
		var parts []string
		for _, art := range arts {
			parts = append(parts, fmt.Sprintf("%s (%s of %s, %s)", art.GetId(), kindName(art.GetKind()),
				orDash(art.GetNodeName()), utcMinute(art.GetCreatedAt())))
		}
		what = "artifacts " + strings.Join(parts, ", ")
	}
	if r.spec.GetToTime() != nil || r.spec.GetToLatest() {
		return pitrPrompt(r, addr)
	}
	kinds := "PostgreSQL, Redis and config"
	if len(r.spec.GetOnly()) > 0 {
		var names []string
		for _, k := range r.spec.GetOnly() {
			names = append(names, kindName(k))
		}
		kinds = "only " + strings.Join(names, ", ")
	}
	return fmt.Sprintf("Restore node %q from %s (%s) via %s?\nThis stops the node's API and replaces its data with the backup's. [y/N]: ",
		r.node, what, kinds, addr)
}

// restoreTable ends a restore watch: the task table, then the artifacts
// the control plane chose for the restore.
var restoreTable = finisher{
	print: func(w io.Writer, j *forlockv1.Job) error {
		if err := printJobSummary(w, j); err != nil {
			return err
		}
		if err := printTaskTable(w, j.GetTasks()); err != nil {
			return err
		}
		arts := j.GetSpec().GetRestore().GetArtifacts()
		if len(arts) == 0 {
			return nil
		}
		if _, err := fmt.Fprintln(w, "\nfrom these artifacts:"); err != nil {
			return fmt.Errorf("write output: %w", err)
		}
		if err := printArtifactTable(w, arts); err != nil {
			return err
		}
		return printWalRanges(w, j.GetSpec().GetRestore().GetWal())
	},
	result: jobResult,
}
