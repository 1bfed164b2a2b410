package commands

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

func newAlertsCmd(a *app) *cobra.Command {
	var nodes []string
	cmd := &cobra.Command{
		Use:   "alerts",
		Short: "List the alerts the control plane's built-in alerting holds firing, oldest first",
		Long: `List the alerts firing now, oldest first: the conditions of the Prometheus
rules file (deploy/prometheus/forlock-rules.yml) as the control plane evaluates
them itself, for fleets without Prometheus. Each has a severity, a name, its
node (empty for the control plane's own alerts and for failed jobs), since
when it fires and a summary; -o json adds its labels, fingerprint and runbook
URL (docs/operations.md, "Alerts", says what each means and what to do).
Thresholds are set in the control plane's config (alerting.thresholds,
alerting.overrides).`,
		Example: "  forlockctl alerts\n  forlockctl alerts --node web-1 -o json",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := resolveSettings(a.conn, a.io.Getenv)
			if err != nil {
				return err
			}
			return callUnary(cmd.Context(), s, forlockv1.NewAlertServiceClient, func(ctx context.Context, c forlockv1.AlertServiceClient) error {
				resp, err := c.ListAlerts(ctx, &forlockv1.ListAlertsRequest{Nodes: nodes})
				if err != nil {
					return err
				}
				if a.output == outputJSON {
					return printJSON(a.io.Out, resp)
				}
				return printAlerts(a.io.Out, a.now(), resp.GetAlerts())
			})
		},
	}
	cmd.Flags().StringSliceVar(&nodes, "node", nil, "only the alerts of this node (repeatable or comma-separated)")
	return cmd
}

// printAlerts writes the firing alerts as a table, or "no alerts firing".
func printAlerts(w io.Writer, now time.Time, alerts []*forlockv1.Alert) error {
	if len(alerts) == 0 {
		_, err := fmt.Fprintln(w, "no alerts firing")
		return err
	}
	tw := newTable(w)
	fmt.Fprintln(tw, "SEVERITY\tNAME\tNODE\tSINCE\tSUMMARY")
	for _, al := range alerts {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", al.GetSeverity(), al.GetName(), orDash(al.GetNode()), since(now, al), al.GetSummary())
	}
	return flush(tw)
}

// since is when an alert started firing and how long ago:
// "2026-03-01T11:55:00Z (5m0s ago)".
func since(now time.Time, al *forlockv1.Alert) string {
	t := al.GetSince().AsTime()
	return fmt.Sprintf("%s (%s ago)", t.UTC().Format(time.RFC3339), now.Sub(t).Round(time.Second))
}

// printStatusAlerts is status's alert section: a count, then the table.
func printStatusAlerts(w io.Writer, now time.Time, alerts []*forlockv1.Alert) error {
	if len(alerts) > 0 {
		if _, err := fmt.Fprintf(w, "\n%d alerts firing ('forlockctl alerts'):\n", len(alerts)); err != nil {
			return fmt.Errorf("write output: %w", err)
		}
	} else if _, err := fmt.Fprintln(w); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return printAlerts(w, now, alerts)
}
