package commands

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

const backupsDeleteHelp = `Delete artifacts from their storage (the file on the node's host, or the
S3 object) and mark them deleted in the catalog, as a delete_backup job.

What to delete, exactly one of:
  ARTIFACT_ID...             one or more artifacts
  --restore-point ID         every artifact of a restore point

The job runs on the node that wrote the artifacts. An artifact in S3 can be
deleted through another node whose agent reaches the bucket (--node), e.g.
when its own node is gone. A file already missing counts as deleted, so a
failed delete can simply be run again. It asks for confirmation when
standard input is a terminal; otherwise --yes is required.

Exit codes: 0 deleted, 1 not deleted (nothing is marked deleted unless the
agent deleted it), 130 interrupted by Ctrl-C (the job keeps running), 64 a
wrong command line.
`

type backupsDeleteFlags struct {
	restorePoint string
	yes          bool
	jobs         jobFlags
}

func newBackupsDeleteCmd(a *app) *cobra.Command {
	var f backupsDeleteFlags
	cmd := &cobra.Command{
		Use:   "delete (ARTIFACT_ID... | --restore-point ID) [--node NODE]",
		Short: "Delete artifacts from their storage and mark them deleted in the catalog",
		Long:  backupsDeleteHelp,
		Example: `  forlockctl backups delete 18a2c3d4e5f60718293a4b5c-redis --yes
  forlockctl backups delete --restore-point 18a2c3d4e5f60718293a4b5c
  forlockctl backups delete 18a2c3d4e5f60718293a4b5c-postgres --node web-2 --yes`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return a.deleteBackups(cmd, &f, args) },
	}
	fs := cmd.Flags()
	fs.StringVar(&f.restorePoint, "restore-point", "", "delete every artifact of this restore point")
	fs.BoolVarP(&f.yes, "yes", "y", false, "do not ask for confirmation")
	f.jobs.registerOnly(fs, restoreJobFlags...)
	fs.Lookup("node").Usage = "the node that deletes (default: the node that wrote the artifacts)"
	return cmd
}

func (a *app) deleteBackups(cmd *cobra.Command, f *backupsDeleteFlags, args []string) error {
	spec := &forlockv1.DeleteBackupSpec{}
	switch {
	case len(args) > 0 && f.restorePoint != "":
		return usageErrorf("give artifact IDs or --restore-point, not both")
	case len(args) > 0:
		spec.ArtifactIds = args
	case f.restorePoint != "":
		spec.RestorePointId = f.restorePoint
	default:
		return usageErrorf("what to delete? give ARTIFACT_ID... or --restore-point ID (see 'forlockctl restore --list')")
	}
	if !f.yes && !isTerminal(a.io.In) {
		return usageErrorf("refusing to delete backups without confirmation: pass --yes")
	}
	s, err := resolveSettings(a.conn, a.io.Getenv)
	if err != nil {
		return err
	}
	var arts []*forlockv1.Artifact
	if err := a.callBackups(cmd.Context(), s, func(ctx context.Context, c forlockv1.BackupServiceClient) error {
		arts, err = lookupArtifacts(ctx, c, spec)
		return err
	}); err != nil {
		return err
	}
	if !cmd.Flags().Changed("node") {
		node, err := ownerNode(arts)
		if err != nil {
			return err
		}
		if err := cmd.Flags().Set("node", node); err != nil {
			return err
		}
	} else if _, err := oneNode(f.jobs.nodes); err != nil {
		return err
	}
	if !f.yes {
		var ids []string
		for _, art := range arts {
			ids = append(ids, fmt.Sprintf("%s (%s)", art.GetId(), art.GetLocation()))
		}
		ok, err := confirm(a.io.In, a.io.Err, fmt.Sprintf("Delete %s via %s? This cannot be undone. [y/N]: ", strings.Join(ids, ", "), s.address))
		if err != nil {
			return err
		}
		if !ok {
			return errors.New("nothing deleted: not confirmed")
		}
	}
	return a.runJob(cmd, &f.jobs, &forlockv1.JobSpec{Kind: &forlockv1.JobSpec_DeleteBackup{DeleteBackup: spec}}, taskTable)
}

// lookupArtifacts returns the artifacts the spec names, from the catalog.
func lookupArtifacts(ctx context.Context, c forlockv1.BackupServiceClient, spec *forlockv1.DeleteBackupSpec) ([]*forlockv1.Artifact, error) {
	if spec.GetRestorePointId() != "" {
		rps, err := listRestorePoints(ctx, c, "")
		if err != nil {
			return nil, err
		}
		for _, rp := range rps {
			if rp.GetId() == spec.GetRestorePointId() {
				return rp.GetArtifacts(), nil
			}
		}
		return nil, fmt.Errorf("restore point %q not found in the catalog: see 'forlockctl restore --list'", spec.GetRestorePointId())
	}
	var arts []*forlockv1.Artifact
	for _, id := range spec.GetArtifactIds() {
		resp, err := c.GetArtifact(ctx, &forlockv1.GetArtifactRequest{Id: id})
		if err != nil {
			return nil, fmt.Errorf("artifact %q: %w", id, err)
		}
		arts = append(arts, resp.GetArtifact())
	}
	return arts, nil
}

// ownerNode is the one node that wrote every artifact.
func ownerNode(arts []*forlockv1.Artifact) (string, error) {
	node := ""
	for _, art := range arts {
		switch {
		case node == "":
			node = art.GetNodeName()
		case art.GetNodeName() != node:
			return "", usageErrorf("the artifacts come from several nodes (%s, %s): delete each node's separately, or give --node for S3 artifacts", node, art.GetNodeName())
		}
	}
	if node == "" {
		return "", errors.New("the catalog names no node for these artifacts: give --node")
	}
	return node, nil
}
