package commands

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

func newBackupsCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "backups",
		Short: "Inspect the backup catalog",
		Long: `Inspect the backup catalog: the artifacts that 'forlockctl backup' wrote.
List the restore points with 'forlockctl restore --list'; delete artifacts
with 'forlockctl backups delete'.`,
		Args: cobra.ArbitraryArgs,
		RunE: groupRun,
	}
	cmd.AddCommand(newBackupsGetCmd(a), newBackupsDeleteCmd(a), newBackupsRewrapCmd(a), newBackupsVerifyCmd(a))
	return cmd
}

func newBackupsGetCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:     "get ARTIFACT_ID",
		Short:   "Show one artifact of the catalog: where it is, its size, checksum and key",
		Example: "  forlockctl backups get 18a2c3d4e5f60718293a4b5c-postgres\n  forlockctl backups get 18a2c3d4e5f60718293a4b5c-postgres -o json",
		Args:    exactArg("ARTIFACT_ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withBackupClient(cmd, func(ctx context.Context, c forlockv1.BackupServiceClient) error {
				resp, err := c.GetArtifact(ctx, &forlockv1.GetArtifactRequest{Id: args[0]})
				if err != nil {
					return err
				}
				if a.output == outputJSON {
					return printJSON(a.io.Out, resp)
				}
				return printArtifactDetail(a.io.Out, a.now(), resp.GetArtifact())
			})
		},
	}
}

// withBackupClient resolves the connection settings, dials, and runs call
// with a BackupService client and a per-call deadline.
func (a *app) withBackupClient(cmd *cobra.Command, call func(context.Context, forlockv1.BackupServiceClient) error) error {
	s, err := resolveSettings(a.conn, a.io.Getenv)
	if err != nil {
		return err
	}
	return a.callBackups(cmd.Context(), s, call)
}

func (a *app) callBackups(ctx context.Context, s settings, call func(context.Context, forlockv1.BackupServiceClient) error) error {
	return callUnary(ctx, s, forlockv1.NewBackupServiceClient, call)
}

// maxListPages bounds how many pages 'restore --list' follows, so a broken
// server cannot keep it looping.
const maxListPages = 1000

// listRestorePoints fetches every restore point (of node, if set), newest
// first, following the pages.
func listRestorePoints(ctx context.Context, c forlockv1.BackupServiceClient, node string) ([]*forlockv1.RestorePoint, error) {
	var out []*forlockv1.RestorePoint
	req := &forlockv1.ListRestorePointsRequest{Node: node, PageSize: 1000}
	for range maxListPages {
		resp, err := c.ListRestorePoints(ctx, req)
		if err != nil {
			return nil, err
		}
		out = append(out, resp.GetRestorePoints()...)
		if resp.GetNextPageToken() == "" {
			return out, nil
		}
		req.PageToken = resp.GetNextPageToken()
	}
	return nil, fmt.Errorf("list restore points: more than %d pages", maxListPages)
}

func newBackupsRewrapCmd(a *app) *cobra.Command {
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "rewrap",
		Short: "Re-wrap the catalog's data keys with the current key-encryption key version",
		Long: `Re-wrap the data key of every available artifact whose key ID is not the
control plane's current one, e.g. after the Vault Transit key was rotated.
Only the wrapped keys in the catalog change: the artifacts' data is not
read or re-uploaded. An artifact's own header keeps the key it was written
with, so offline decryption ('backup decrypt') needs that key version until
it is retired.`,
		Example: "  forlockctl backups rewrap --dry-run\n  forlockctl backups rewrap",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.withBackupClient(cmd, func(ctx context.Context, c forlockv1.BackupServiceClient) error {
				resp, err := c.RewrapKeys(ctx, &forlockv1.RewrapKeysRequest{DryRun: dryRun})
				if err != nil {
					return err
				}
				if a.output == outputJSON {
					return printJSON(a.io.Out, resp)
				}
				verb := "re-wrapped"
				if dryRun {
					verb = "would re-wrap"
				}
				_, err = fmt.Fprintf(a.io.Out, "%s %d artifacts; %d already under %s\n", verb, resp.GetRewrapped(), resp.GetCurrent(), resp.GetKeyId())
				return err
			})
		},
	}
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "only count what would change")
	return cmd
}
