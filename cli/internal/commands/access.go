package commands

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/durationpb"

	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

func newAccessCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "access",
		Short: "Identities for people and programs: roles, scopes, secrets",
		Long: `Identities for people and programs.

Each identity has a role and, optionally, a scope:
  viewer    reads nodes, jobs, the backup catalog, health and certificates
  operator  also runs health checks, backups, upgrades and certificate
            rotations, cancels jobs and reads logs
  admin     also restores, deletes backups, rolls back, removes nodes,
            manages join tokens, identities and backup keys, reads the audit log
A scope (--scope env=staging) bounds the nodes it sees and acts on: --all means
every node in scope. The secret is shown once; only its hash is stored.`,
		Args: cobra.ArbitraryArgs,
		RunE: groupRun,
	}
	cmd.AddCommand(newAccessCreateCmd(a), newAccessListCmd(a), newAccessRevokeCmd(a), newAccessRotateCmd(a), newAccessWhoAmICmd(a))
	return cmd
}

func (a *app) withAccessClient(cmd *cobra.Command, call func(context.Context, forlockv1.AccessServiceClient) error) error {
	s, err := resolveSettings(a.conn, a.io.Getenv)
	if err != nil {
		return err
	}
	return callUnary(cmd.Context(), s, forlockv1.NewAccessServiceClient, call)
}

func newAccessCreateCmd(a *app) *cobra.Command {
	var role, scope string
	var ttl time.Duration
	var quiet bool
	cmd := &cobra.Command{
		Use:   "create NAME --role ROLE",
		Short: "Create an identity; its secret is shown only once",
		Example: `  forlockctl access create alice --role operator --scope env=staging --ttl 720h
  forlockctl access create nightly-backup --role operator -q > /etc/forlock/backup.token`,
		Args: exactArg("identity name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if role == "" {
				return usageErrorf("--role is required: viewer, operator or admin")
			}
			if ttl < 0 {
				return usageErrorf("--ttl %s: give a positive lifetime, or leave it out for none", ttl)
			}
			req := &forlockv1.CreateIdentityRequest{Name: args[0], Role: role, Scope: scope}
			if ttl > 0 {
				req.Ttl = durationpb.New(ttl)
			}
			return a.withAccessClient(cmd, func(ctx context.Context, c forlockv1.AccessServiceClient) error {
				resp, err := c.CreateIdentity(ctx, req)
				if err != nil {
					return err
				}
				if a.output == outputJSON && !quiet {
					return printJSON(a.io.Out, resp)
				}
				return printIdentitySecret(a.io.Out, a.now(), resp.GetIdentity(), resp.GetSecret(), quiet, "Identity created")
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&role, "role", "", "viewer, operator or admin")
	f.StringVar(&scope, "scope", "", "label selector bounding the nodes it sees and acts on (default: the whole fleet)")
	f.DurationVar(&ttl, "ttl", 0, "lifetime of the secret (default: none; at most 8784h)")
	f.BoolVarP(&quiet, "quiet", "q", false, "print only the secret")
	return cmd
}

func newAccessListCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List identities (never their secrets)",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.withAccessClient(cmd, func(ctx context.Context, c forlockv1.AccessServiceClient) error {
				resp, err := c.ListIdentities(ctx, &forlockv1.ListIdentitiesRequest{})
				if err != nil {
					return err
				}
				if a.output == outputJSON {
					return printJSON(a.io.Out, resp)
				}
				tw := newTable(a.io.Out)
				fmt.Fprintln(tw, "NAME\tROLE\tSCOPE\tSTATUS\tEXPIRES\tCREATED BY")
				for _, id := range resp.GetIdentities() {
					scope := id.GetScope()
					if scope == "" {
						scope = "(whole fleet)"
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", id.GetName(), id.GetRole(), scope, identityStatus(a.now(), id),
						when(a.now(), id.GetExpiresAt()), id.GetCreatedBy())
				}
				return flush(tw)
			})
		},
	}
}

func identityStatus(now time.Time, id *forlockv1.Identity) string {
	switch {
	case id.GetBootstrap():
		return "bootstrap"
	case id.GetRevokedAt() != nil:
		return "revoked"
	case id.GetExpiresAt() != nil && !now.Before(id.GetExpiresAt().AsTime()):
		return "expired"
	}
	return "active"
}

func newAccessRevokeCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "revoke NAME",
		Short: "Make an identity's secret unusable from its next call",
		Args:  exactArg("identity name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withAccessClient(cmd, func(ctx context.Context, c forlockv1.AccessServiceClient) error {
				resp, err := c.RevokeIdentity(ctx, &forlockv1.RevokeIdentityRequest{Name: args[0]})
				if err != nil {
					return err
				}
				if a.output == outputJSON {
					return printJSON(a.io.Out, resp)
				}
				_, err = fmt.Fprintf(a.io.Out, "Revoked identity %s.\n", resp.GetIdentity().GetName())
				return err
			})
		},
	}
}

func newAccessRotateCmd(a *app) *cobra.Command {
	var ttl time.Duration
	var quiet bool
	cmd := &cobra.Command{
		Use:   "rotate NAME",
		Short: "Replace an identity's secret (the old one stops working at once)",
		Args:  exactArg("identity name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if ttl < 0 {
				return usageErrorf("--ttl %s: give a positive lifetime, or leave it out to keep the expiry", ttl)
			}
			req := &forlockv1.RotateIdentityRequest{Name: args[0]}
			if ttl > 0 {
				req.Ttl = durationpb.New(ttl)
			}
			return a.withAccessClient(cmd, func(ctx context.Context, c forlockv1.AccessServiceClient) error {
				resp, err := c.RotateIdentity(ctx, req)
				if err != nil {
					return err
				}
				if a.output == outputJSON && !quiet {
					return printJSON(a.io.Out, resp)
				}
				return printIdentitySecret(a.io.Out, a.now(), resp.GetIdentity(), resp.GetSecret(), quiet, "Secret replaced")
			})
		},
	}
	cmd.Flags().DurationVar(&ttl, "ttl", 0, "new lifetime from now (default: keep the expiry)")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print only the secret")
	return cmd
}

func newAccessWhoAmICmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "whoami",
		Short: "Show the identity, role, scope and permissions of your credential",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.withAccessClient(cmd, func(ctx context.Context, c forlockv1.AccessServiceClient) error {
				resp, err := c.WhoAmI(ctx, &forlockv1.WhoAmIRequest{})
				if err != nil {
					return err
				}
				if a.output == outputJSON {
					return printJSON(a.io.Out, resp)
				}
				scope := resp.GetScope()
				if scope == "" {
					scope = "(whole fleet)"
				}
				tw := newTable(a.io.Out)
				fmt.Fprintf(tw, "Identity:\t%s\nRole:\t%s\nScope:\t%s\nPermissions:\t%v\n", resp.GetName(), resp.GetRole(), scope, resp.GetPermissions())
				return flush(tw)
			})
		},
	}
}

func printIdentitySecret(w io.Writer, now time.Time, id *forlockv1.Identity, secret string, quiet bool, what string) error {
	if quiet {
		_, err := fmt.Fprintln(w, secret)
		return err
	}
	fmt.Fprintf(w, "%s. The secret is shown only this once: store it now.\n\n    %s\n\n", what, secret)
	tw := newTable(w)
	scope := id.GetScope()
	if scope == "" {
		scope = "(whole fleet)"
	}
	fmt.Fprintf(tw, "Identity:\t%s\nRole:\t%s\nScope:\t%s\nExpires:\t%s\n", id.GetName(), id.GetRole(), scope, when(now, id.GetExpiresAt()))
	if err := flush(tw); err != nil {
		return err
	}
	_, err := fmt.Fprintln(w, "\nUse it as forlockctl --token, FORLOCK_TOKEN, or the token of a context in forlockctl.yaml.")
	return err
}
