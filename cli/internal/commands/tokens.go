package commands

import (
	"context"
	"fmt"
	"io"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/durationpb"

	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// Limits documented on CreateJoinTokenRequest.
const (
	maxTokenTTL     = 30 * 24 * time.Hour
	maxTokenUses    = 10000
	maxDescription  = 256
	defaultTokenTTL = time.Hour
)

func newTokensCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "tokens",
		Aliases: []string{"token"},
		Short:   "Create, list and revoke join tokens that let new hosts enroll",
		Args:    cobra.ArbitraryArgs,
		RunE:    groupRun,
	}
	cmd.AddCommand(newTokensCreateCmd(a), newTokensListCmd(a), newTokensRevokeCmd(a))
	return cmd
}

type tokenCreateOpts struct {
	ttl         time.Duration
	maxUses     uint32
	labels      []string
	description string
	forNode     string
	quiet       bool
}

// request validates the flags and builds the request.
func (o *tokenCreateOpts) request(output string) (*forlockv1.CreateJoinTokenRequest, error) {
	if o.ttl <= 0 || o.ttl > maxTokenTTL {
		return nil, usageErrorf("--ttl %s: give a lifetime above zero and at most 720h (30 days), e.g. --ttl 1h", o.ttl)
	}
	if o.maxUses < 1 || o.maxUses > maxTokenUses {
		return nil, usageErrorf("--max-uses %d: give a number from 1 to %d", o.maxUses, maxTokenUses)
	}
	if n := utf8.RuneCountInString(o.description); n > maxDescription || !utf8.ValidString(o.description) {
		return nil, usageErrorf("--description is %d characters long: use at most %d", n, maxDescription)
	}
	if o.quiet && output == outputJSON {
		return nil, usageErrorf("-q and -o json cannot be combined: use -q for the bare secret or -o json for everything")
	}
	labels, err := parseLabels(o.labels)
	if err != nil {
		return nil, err
	}
	if o.forNode != "" && o.maxUses != 1 {
		return nil, usageErrorf("--for-node makes a token with exactly one use: leave --max-uses out")
	}
	if o.forNode != "" && len(labels) > 0 {
		return nil, usageErrorf("--for-node takes no --label: the replacement host keeps node %s's labels", o.forNode)
	}
	return &forlockv1.CreateJoinTokenRequest{
		Ttl:         durationpb.New(o.ttl),
		MaxUses:     o.maxUses,
		Labels:      labels,
		Description: o.description,
		ForNode:     o.forNode,
	}, nil
}

func newTokensCreateCmd(a *app) *cobra.Command {
	var o tokenCreateOpts
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Create a join token; its secret is shown only once",
		Long: `Create a join token; its secret is shown only once.

A token enrolls new nodes. Enrolling under the name of a registered node is
refused, unless the agent still holds that node's key (its certificate expired
while it was offline), or the token was made with --for-node for that node: the
way to replace a lost host. The replacement keeps the node's ID, labels and
history; the old host's identity and certificates are retired at once.`,
		Example: `  forlockctl tokens create --ttl 2h --max-uses 5 --label env=prod --description "rack 4"
  forlock-agent --join-token "$(forlockctl tokens create -q --label env=prod)" ...
  forlockctl tokens create --for-node web1   # replace web1's lost host (or lift its quarantine)`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			req, err := o.request(a.output)
			if err != nil {
				return err
			}
			return a.withNodeClient(cmd, func(ctx context.Context, c forlockv1.NodeServiceClient) error {
				resp, err := c.CreateJoinToken(ctx, req)
				if err != nil {
					return err
				}
				switch {
				case o.quiet:
					_, err = fmt.Fprintln(a.io.Out, resp.GetSecret())
					return err
				case a.output == outputJSON:
					return printJSON(a.io.Out, resp)
				}
				return printCreatedToken(a.io.Out, a.now(), resp)
			})
		},
	}
	f := cmd.Flags()
	f.DurationVar(&o.ttl, "ttl", defaultTokenTTL, "how long the token works (at most 720h)")
	f.Uint32Var(&o.maxUses, "max-uses", 1, fmt.Sprintf("how many hosts may enroll with it (1-%d)", maxTokenUses))
	f.StringArrayVar(&o.labels, "label", nil, "label key=value given to every node enrolled with it (repeatable)")
	f.StringVar(&o.description, "description", "", "free text to tell tokens apart")
	f.StringVar(&o.forNode, "for-node", "", "make a one-use token that replaces the host of this registered node (name or ID)")
	f.BoolVarP(&o.quiet, "quiet", "q", false, "print only the secret")
	return cmd
}

func printCreatedToken(w io.Writer, now time.Time, resp *forlockv1.CreateJoinTokenResponse) error {
	t := resp.GetToken()
	fmt.Fprintf(w, "Join token created. The secret is shown only this once: store it now.\n\n    %s\n\n", resp.GetSecret())
	tw := newTable(w)
	fmt.Fprintf(tw, "ID:\t%s\n", t.GetId())
	fmt.Fprintf(tw, "Expires:\t%s\n", when(now, t.GetExpiresAt()))
	fmt.Fprintf(tw, "Uses:\t%d of %d\n", t.GetUses(), t.GetMaxUses())
	fmt.Fprintf(tw, "Labels:\t%s\n", labelString(t.GetLabels()))
	if n := t.GetForNode(); n != "" {
		fmt.Fprintf(tw, "For node:\t%s (replaces its host; retires its current identity)\n", n)
	}
	if d := t.GetDescription(); d != "" {
		fmt.Fprintf(tw, "Description:\t%s\n", d)
	}
	if err := flush(tw); err != nil {
		return err
	}
	_, err := fmt.Fprintln(w, "\nGive the secret to forlock-agent as its join token on the host to enroll.")
	return err
}

func newTokensListCmd(a *app) *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List join tokens (never their secrets)",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.withNodeClient(cmd, func(ctx context.Context, c forlockv1.NodeServiceClient) error {
				resp, err := c.ListJoinTokens(ctx, &forlockv1.ListJoinTokensRequest{IncludeInactive: all})
				if err != nil {
					return err
				}
				if a.output == outputJSON {
					return printJSON(a.io.Out, resp)
				}
				if len(resp.GetTokens()) == 0 {
					msg := "no active join tokens (--all includes expired, used-up and revoked ones)"
					if all {
						msg = "no join tokens"
					}
					_, err := fmt.Fprintln(a.io.Err, msg)
					return err
				}
				return printTokenTable(a.io.Out, a.now(), resp.GetTokens())
			})
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "include expired, used-up and revoked tokens")
	return cmd
}

func printTokenTable(w io.Writer, now time.Time, tokens []*forlockv1.JoinToken) error {
	tw := newTable(w)
	fmt.Fprintln(tw, "ID\tSTATUS\tUSES\tCREATED\tEXPIRES\tFOR-NODE\tLABELS\tDESCRIPTION")
	for _, t := range tokens {
		fmt.Fprintf(tw, "%s\t%s\t%d/%d\t%s\t%s\t%s\t%s\t%s\n", t.GetId(), tokenStatus(now, t), t.GetUses(), t.GetMaxUses(),
			age(now, t.GetCreatedAt()), age(now, t.GetExpiresAt()), orDash(t.GetForNode()), labelString(t.GetLabels()), orDash(t.GetDescription()))
	}
	return flush(tw)
}

// tokenStatus says whether a token still works and, if not, why.
func tokenStatus(now time.Time, t *forlockv1.JoinToken) string {
	switch {
	case t.GetRevokedAt() != nil:
		return "revoked"
	case t.GetExpiresAt() != nil && !now.Before(t.GetExpiresAt().AsTime()):
		return "expired"
	case t.GetMaxUses() > 0 && t.GetUses() >= t.GetMaxUses():
		return "used up"
	}
	return "active"
}

func newTokensRevokeCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "revoke ID",
		Short: "Make a join token unusable at once",
		Args:  exactArg("token ID (see 'forlockctl tokens list')"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withNodeClient(cmd, func(ctx context.Context, c forlockv1.NodeServiceClient) error {
				resp, err := c.RevokeJoinToken(ctx, &forlockv1.RevokeJoinTokenRequest{Id: args[0]})
				if err != nil {
					return err
				}
				if a.output == outputJSON {
					return printJSON(a.io.Out, resp)
				}
				_, err = fmt.Fprintf(a.io.Out, "Revoked join token %s.\n", resp.GetToken().GetId())
				return err
			})
		},
	}
}
