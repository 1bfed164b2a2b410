package commands

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

func newAuditCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Read, verify and export the control plane's tamper-evident audit log",
		Long: `Read, verify and export the audit log.

Every mutating call, enrollment, renewal, identity change and denied call is
recorded, each record chained to the one before by SHA-256 and the newest
signed by the control plane's audit key. 'audit verify' walks the whole chain
and names the first record that was changed or removed.`,
		Args: cobra.ArbitraryArgs,
		RunE: groupRun,
	}
	cmd.AddCommand(newAuditListCmd(a, false), newAuditListCmd(a, true), newAuditVerifyCmd(a))
	return cmd
}

func (a *app) withAuditClient(cmd *cobra.Command, call func(context.Context, forlockv1.AuditServiceClient) error) error {
	s, err := resolveSettings(a.conn, a.io.Getenv)
	if err != nil {
		return err
	}
	return callUnary(cmd.Context(), s, forlockv1.NewAuditServiceClient, call)
}

// newAuditListCmd is 'audit list' (a table, or one JSON document per page
// with -o json) or, with export, 'audit export' (every matching record as a
// JSON line, for a SIEM).
func newAuditListCmd(a *app, export bool) *cobra.Command {
	var actor, method string
	var since time.Duration
	var failures bool
	var limit int
	use, short := "list", "List audit records, oldest first"
	if export {
		use, short = "export", "Write every matching audit record as a JSON line (for a SIEM)"
	}
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Example: `  forlockctl audit list --since 24h --actor alice
  forlockctl audit list --failures --method RemoveNode
  forlockctl audit export --since 720h > audit.jsonl`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			req := &forlockv1.ListAuditRecordsRequest{Actor: actor, Method: method, FailuresOnly: failures, PageSize: 1000}
			if since < 0 {
				return usageErrorf("--since %s: give a positive duration, e.g. --since 24h", since)
			}
			if since > 0 {
				req.Since = timestamppb.New(a.now().Add(-since))
			}
			var recs []*forlockv1.AuditRecord
			err := a.withAuditClient(cmd, func(ctx context.Context, c forlockv1.AuditServiceClient) error {
				for {
					resp, err := c.ListAuditRecords(ctx, req)
					if err != nil {
						return err
					}
					for _, r := range resp.GetRecords() {
						if export {
							line, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(r)
							if err != nil {
								return err
							}
							if _, err := fmt.Fprintf(a.io.Out, "%s\n", line); err != nil {
								return err
							}
							continue
						}
						recs = append(recs, r)
					}
					if resp.GetNextPageToken() == "" || (!export && limit > 0 && len(recs) >= limit) {
						return nil
					}
					req.PageToken = resp.GetNextPageToken()
				}
			})
			if err != nil || export {
				return err
			}
			if limit > 0 && len(recs) > limit {
				recs = recs[len(recs)-limit:]
			}
			if a.output == outputJSON {
				return printJSON(a.io.Out, &forlockv1.ListAuditRecordsResponse{Records: recs})
			}
			tw := newTable(a.io.Out)
			fmt.Fprintln(tw, "SEQ\tTIME\tACTOR\tCLIENT\tMETHOD\tTARGET\tRESULT\tREASON")
			for _, r := range recs {
				res := r.GetResult()
				if r.GetCount() > 1 {
					res = fmt.Sprintf("%s x%d", res, r.GetCount())
				}
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.GetSeq(), r.GetTime().AsTime().UTC().Format(time.RFC3339),
					orDash(r.GetActor()), orDash(r.GetClient()), r.GetMethod(), orDash(r.GetTarget()), res, orDash(r.GetReason()))
			}
			return flush(tw)
		},
	}
	f := cmd.Flags()
	f.StringVar(&actor, "actor", "", "only records of this identity (or node/<id>, join-token/<id>)")
	f.StringVar(&method, "method", "", "only records whose method contains this, e.g. RemoveNode")
	f.DurationVar(&since, "since", 0, "only records from this long ago on, e.g. 24h")
	f.BoolVar(&failures, "failures", false, "only failed and denied calls")
	if !export {
		f.IntVar(&limit, "limit", 0, "show at most this many records (the newest of those read first)")
	}
	return cmd
}

func newAuditVerifyCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "verify",
		Short: "Walk the audit chain and check its signed head and outside checkpoints; fails on any tampering",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var resp *forlockv1.VerifyAuditResponse
			err := a.withAuditClient(cmd, func(ctx context.Context, c forlockv1.AuditServiceClient) error {
				var err error
				resp, err = c.VerifyAudit(ctx, &forlockv1.VerifyAuditRequest{})
				return err
			})
			if err != nil {
				return err
			}
			if a.output == outputJSON {
				if err := printJSON(a.io.Out, resp); err != nil {
					return err
				}
			} else if resp.GetOk() {
				fmt.Fprintf(a.io.Out, "Audit log intact: %d records (%d to %d), signed head verified, %d outside checkpoints match.\n",
					resp.GetRecords(), resp.GetFirstSeq(), resp.GetLastSeq(), resp.GetCheckpoints())
			}
			if !resp.GetOk() {
				if resp.GetBadSeq() != 0 {
					return fmt.Errorf("AUDIT LOG TAMPERED: record %d: %s", resp.GetBadSeq(), resp.GetProblem())
				}
				return fmt.Errorf("AUDIT LOG TAMPERED: %s", resp.GetProblem())
			}
			return nil
		},
	}
}
