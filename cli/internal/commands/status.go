package commands

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// certWarn: an agent certificate with less time left than this is flagged.
// Agent certificates are short-lived (24 h by default) and renewed at two
// thirds of their life, so one this close to expiry has missed its renewal.
const certWarn = time.Hour

// tlsWarn: a node's nginx certificate with less time left than this is
// flagged, the operations guide's alert threshold.
const tlsWarn = 14 * 24 * time.Hour

func newStatusCmd(a *app) *cobra.Command {
	var selector string
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the fleet on one screen: control plane disk, nodes, state, failing checks, versions",
		Long: `Show the fleet on one screen from the nodes' latest heartbeats (no job runs).
The first line is the control plane itself: its version and its data disk. It
says DISK FULL while the data disk has less free space than the reserve: the
control plane then refuses writes (submits, token changes, node removal,
cancels) but keeps serving reads and heartbeats, and resumes by itself once
space is freed in its data dir. Then a summary line, then one line per node with its state, whether its control
stream is open, the agent version, the checks that are WARN or CRITICAL in its
last health report, the images of its containers, the time its agent
certificate has left (flagged with "!" under an hour: renewal overdue), and
the time the TLS certificate its nginx serves has left (flagged with "!"
under 14 days, the operations guide's alert threshold; 'forlockctl certs').
Then the alerts firing (as 'forlockctl alerts' lists them; with -l, those
of the selected nodes). Last, flagged with "!", the nodes with restore points none of which passed a
restore drill in the last 7 days, or whose newest drill failed ('forlockctl
backups verify').

Run 'forlockctl health' to run the checks now.`,
		Example: `  forlockctl status
  forlockctl status -l env=prod
  forlockctl status -o json`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := validateSelector(selector); err != nil {
				return err
			}
			s, err := resolveSettings(a.conn, a.io.Getenv)
			if err != nil {
				return err
			}
			return callUnary(cmd.Context(), s, newStatusClients, func(ctx context.Context, c statusClients) error {
				resp, err := c.nodes.ListNodes(ctx, &forlockv1.ListNodesRequest{LabelSelector: selector})
				if err != nil {
					return err
				}
				if a.output == outputJSON {
					return printJSON(a.io.Out, resp)
				}
				cp, err := c.controlPlane.GetStatus(ctx, &forlockv1.GetStatusRequest{})
				if status.Code(err) == codes.Unimplemented {
					cp, err = nil, nil // an older control plane
				}
				if err != nil {
					return err
				}
				if _, err := fmt.Fprintln(a.io.Out, controlPlaneLine(a.now(), cp)); err != nil {
					return fmt.Errorf("write output: %w", err)
				}
				for _, l := range restoredLines(cp.GetRestoredFrom()) {
					if _, err := fmt.Fprintln(a.io.Out, l); err != nil {
						return fmt.Errorf("write output: %w", err)
					}
				}
				if err := printStatus(a.io.Out, a.now(), resp.GetNodes()); err != nil {
					return err
				}
				if err := statusAlerts(ctx, a, c.alerts, selector, resp.GetNodes()); err != nil {
					return err
				}
				rps, err := listRestorePoints(ctx, c.backups, "")
				if status.Code(err) == codes.PermissionDenied || status.Code(err) == codes.Unimplemented {
					return nil // drills need the catalog, which this caller may not read
				}
				if err != nil {
					return err
				}
				return printDrillFlags(a.io.Out, drillFlags(a.now(), resp.GetNodes(), rps))
			})
		},
	}
	cmd.Flags().StringVarP(&selector, "selector", "l", "", "only nodes matching this label selector")
	return cmd
}

type statusClients struct {
	nodes        forlockv1.NodeServiceClient
	controlPlane forlockv1.ControlPlaneServiceClient
	backups      forlockv1.BackupServiceClient
	alerts       forlockv1.AlertServiceClient
}

func newStatusClients(cc grpc.ClientConnInterface) statusClients {
	return statusClients{forlockv1.NewNodeServiceClient(cc), forlockv1.NewControlPlaneServiceClient(cc), forlockv1.NewBackupServiceClient(cc),
		forlockv1.NewAlertServiceClient(cc)}
}

// controlPlaneLine is the control plane's own state: "control plane v1.2:
// data disk ok, 7.5 GiB free (reserve 64.0 MiB)", or, loudly, DISK FULL
// with the error callers get. nil means a control plane too old to say.
func controlPlaneLine(now time.Time, cp *forlockv1.GetStatusResponse) string {
	if cp == nil {
		return "control plane: disk state unknown (it predates ControlPlaneService: upgrade it)"
	}
	d := cp.GetDataDisk()
	head := "control plane " + orDash(cp.GetServerVersion()) + ": "
	if !d.GetWritesRefused() {
		return fmt.Sprintf("%sdata disk ok, %s free (reserve %s)", head, humanBytes(d.GetFreeBytes()), humanBytes(d.GetReserveBytes()))
	}
	since := ""
	if t := d.GetRefusedSince(); t != nil {
		since = fmt.Sprintf(" since %s (%s ago)", t.AsTime().UTC().Format("15:04:05Z"), now.Sub(t.AsTime()).Round(time.Second))
	}
	return fmt.Sprintf("%sDISK FULL%s: submits, token changes, node removal and cancels are refused; reads and heartbeats go on\n  %s",
		head, since, orDash(d.GetMessage()))
}

// restoredLines say that the control plane was restored from a snapshot,
// and list the agents it refused because they enrolled after it.
func restoredLines(r *forlockv1.RestoredFrom) []string {
	if r == nil {
		return nil
	}
	out := []string{fmt.Sprintf("control plane restored at %s from the snapshot taken at %s: %d tasks in flight then ended as unknown",
		r.GetRestoredAt().AsTime().UTC().Format(time.RFC3339), r.GetTakenAt().AsTime().UTC().Format(time.RFC3339), r.GetUnknownTasks())}
	for _, n := range r.GetLostNodes() {
		name := n.GetNodeName()
		if name == "" {
			name = "(name unknown)"
		}
		out = append(out, fmt.Sprintf("  node %s %s enrolled after the snapshot (last refused %s): give it a new join token and delete its state dir",
			name, n.GetNodeId(), n.GetLastSeen().AsTime().UTC().Format(time.RFC3339)))
	}
	return out
}

// printStatus writes the summary line and the node table.
func printStatus(w io.Writer, now time.Time, nodes []*forlockv1.Node) error {
	if _, err := fmt.Fprintln(w, statusSummary(now, nodes)); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	if len(nodes) == 0 {
		return nil
	}
	if _, err := fmt.Fprintln(w); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	tw := newTable(w)
	fmt.Fprintln(tw, "NAME\tSTATE\tCONNECTED\tAGENT\tFAILING\tIMAGES\tCERT\tTLS")
	for _, n := range nodes {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", n.GetName(), stateName(n.GetState()), yesNo(n.GetConnected()),
			orDash(agentVersion(n)), orDash(failingChecks(n.GetHealth())), orDash(images(n.GetHealth())),
			certLeft(now, n), tlsLeft(now, n.GetHealth().GetCertificate()))
	}
	return flush(tw)
}

// statusSummary is "3 nodes: 2 online, 1 unreachable, 0 offline; checks: 1
// critical, 0 warn", with enrolled nodes and expiring certificates added
// when there are any.
func statusSummary(now time.Time, nodes []*forlockv1.Node) string {
	states := map[forlockv1.NodeState]int{}
	crit, warn, certs, tls := 0, 0, 0, 0
	for _, n := range nodes {
		states[n.GetState()]++
		for _, c := range n.GetHealth().GetChecks() {
			switch c.GetStatus() {
			case forlockv1.CheckStatus_CHECK_STATUS_CRITICAL:
				crit++
			case forlockv1.CheckStatus_CHECK_STATUS_WARN:
				warn++
			}
		}
		if certFlagged(now, n) {
			certs++
		}
		if c := n.GetHealth().GetCertificate(); c.GetNotAfter() != nil && c.GetNotAfter().AsTime().Sub(now) < tlsWarn {
			tls++
		}
	}
	noun := "nodes"
	if len(nodes) == 1 {
		noun = "node"
	}
	s := fmt.Sprintf("%d %s: %d online, %d unreachable, %d offline", len(nodes), noun,
		states[forlockv1.NodeState_NODE_STATE_ONLINE], states[forlockv1.NodeState_NODE_STATE_UNREACHABLE],
		states[forlockv1.NodeState_NODE_STATE_OFFLINE])
	if e := states[forlockv1.NodeState_NODE_STATE_ENROLLED]; e > 0 {
		s += fmt.Sprintf(", %d never connected", e)
	}
	s += fmt.Sprintf("; checks: %d critical, %d warn", crit, warn)
	if certs > 0 {
		s += fmt.Sprintf("; %d agent certificates overdue for renewal", certs)
	}
	if tls > 0 {
		s += fmt.Sprintf("; %d TLS certificates expire within 14 days: forlockctl certs rotate", tls)
	}
	return s
}

// failingChecks names the CRITICAL, then the WARN checks of a report:
// "redis(CRITICAL),disk(WARN)".
func failingChecks(h *forlockv1.HealthReport) string {
	var crit, warn []string
	for _, c := range h.GetChecks() {
		switch c.GetStatus() {
		case forlockv1.CheckStatus_CHECK_STATUS_CRITICAL:
			crit = append(crit, c.GetName()+"(CRITICAL)")
		case forlockv1.CheckStatus_CHECK_STATUS_WARN:
			warn = append(warn, c.GetName()+"(WARN)")
		}
	}
	return strings.Join(append(crit, warn...), ",")
}

// images lists the short image references of a report's containers, each
// once, in order.
func images(h *forlockv1.HealthReport) string {
	var refs []string
	for _, c := range h.GetContainers() {
		if r := shortImage(c.GetImage()); r != "" && !slices.Contains(refs, r) {
			refs = append(refs, r)
		}
	}
	return strings.Join(refs, ",")
}

// certLeft is the time a node's agent certificate has left: "87d", "16h",
// "expired", flagged "!" under certWarn.
func certLeft(now time.Time, n *forlockv1.Node) string {
	return timeLeft(now, n.GetCertificateNotAfter(), certWarn)
}

// timeLeft is the time until na: days, hours under two days, "expired",
// flagged "!" under warn; "-" when na is unset.
func timeLeft(now time.Time, na *timestamppb.Timestamp, warn time.Duration) string {
	if na == nil {
		return "-"
	}
	left := na.AsTime().Sub(now)
	if left <= 0 {
		return "expired !"
	}
	s := fmt.Sprintf("%dd", int(left/(24*time.Hour)))
	if left < 48*time.Hour {
		s = fmt.Sprintf("%dh", int(left/time.Hour))
	}
	if left < warn {
		s += " !"
	}
	return s
}

func certFlagged(now time.Time, n *forlockv1.Node) bool {
	na := n.GetCertificateNotAfter()
	return na != nil && na.AsTime().Sub(now) < certWarn
}

// tlsLeft is the time a served TLS certificate has left, flagged "!"
// under tlsWarn; "-" when none was reported.
func tlsLeft(now time.Time, c *forlockv1.CertificateInfo) string {
	return timeLeft(now, c.GetNotAfter(), tlsWarn)
}

// statusAlerts prints the firing alerts: of the selected nodes when a
// selector is given (filtered here: a selection may be larger than a
// request's node filter), else all of them. An older control plane has no
// AlertService: nothing is printed.
func statusAlerts(ctx context.Context, a *app, c forlockv1.AlertServiceClient, selector string, nodes []*forlockv1.Node) error {
	resp, err := c.ListAlerts(ctx, &forlockv1.ListAlertsRequest{})
	if status.Code(err) == codes.Unimplemented {
		return nil
	}
	if err != nil {
		return err
	}
	alerts := resp.GetAlerts()
	if selector != "" {
		names := map[string]bool{}
		for _, n := range nodes {
			names[n.GetName()] = true
		}
		alerts = slices.DeleteFunc(alerts, func(al *forlockv1.Alert) bool { return !names[al.GetNode()] })
	}
	return printStatusAlerts(a.io.Out, a.now(), alerts)
}
