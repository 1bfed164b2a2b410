package commands

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

func newNodesCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "nodes",
		Aliases: []string{"node"},
		Short:   "List, inspect and remove the fleet's nodes",
		Args:    cobra.ArbitraryArgs,
		RunE:    groupRun,
	}
	cmd.AddCommand(newNodesListCmd(a), newNodesGetCmd(a), newNodesRemoveCmd(a))
	return cmd
}

func newNodesListCmd(a *app) *cobra.Command {
	var (
		selector string
		states   []string
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List nodes, optionally filtered by labels and state",
		Example: `  forlockctl nodes list -l env=prod,!canary --state unreachable,offline
  forlockctl nodes list -o json`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := validateSelector(selector); err != nil {
				return err
			}
			st, err := parseStates(states)
			if err != nil {
				return err
			}
			req := &forlockv1.ListNodesRequest{LabelSelector: selector, States: st}
			return a.withNodeClient(cmd, func(ctx context.Context, c forlockv1.NodeServiceClient) error {
				resp, err := c.ListNodes(ctx, req)
				if err != nil {
					return err
				}
				if a.output == outputJSON {
					return printJSON(a.io.Out, resp)
				}
				if len(resp.GetNodes()) == 0 {
					_, err := fmt.Fprintln(a.io.Err, "no nodes match")
					return err
				}
				return printNodeTable(a.io.Out, a.now(), resp.GetNodes())
			})
		},
	}
	f := cmd.Flags()
	f.StringVarP(&selector, "selector", "l", "", "label selector: comma-separated key=value, key!=value, key, !key")
	f.StringSliceVar(&states, "state", nil, "only nodes in these states: "+stateList)
	return cmd
}

func printNodeTable(w io.Writer, now time.Time, nodes []*forlockv1.Node) error {
	tw := newTable(w)
	fmt.Fprintln(tw, "NAME\tID\tSTATE\tSINCE\tHEARTBEAT\tPING\tAGENT\tLABELS")
	for _, n := range nodes {
		state := stateName(n.GetState())
		if n.GetQuarantined() {
			state += ",QUARANTINED"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", n.GetName(), n.GetId(), state,
			age(now, n.GetStateChangedAt()), age(now, n.GetLastHeartbeatAt()), rtt(n.GetLastPingRtt()),
			orDash(agentVersion(n)), labelString(n.GetLabels()))
	}
	return flush(tw)
}

func agentVersion(n *forlockv1.Node) string {
	if v := n.GetAgentVersion(); v != "" {
		return v
	}
	return n.GetFacts().GetAgentVersion()
}

func newNodesGetCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "get NODE",
		Short: "Show one node in detail (by ID or name)",
		Args:  exactArg("NODE (ID or name)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withNodeClient(cmd, func(ctx context.Context, c forlockv1.NodeServiceClient) error {
				resp, err := c.GetNode(ctx, &forlockv1.GetNodeRequest{Node: args[0]})
				if err != nil {
					return err
				}
				if a.output == outputJSON {
					return printJSON(a.io.Out, resp)
				}
				return printNodeDetail(a.io.Out, a.now(), resp.GetNode())
			})
		},
	}
}

func printNodeDetail(w io.Writer, now time.Time, n *forlockv1.Node) error {
	f := n.GetFacts()
	tw := newTable(w)
	row := func(k, format string, args ...any) { fmt.Fprintf(tw, k+":\t"+format+"\n", args...) }
	row("ID", "%s", n.GetId())
	row("Name", "%s", n.GetName())
	row("Labels", "%s", labelString(n.GetLabels()))
	row("State", "%s since %s", stateName(n.GetState()), when(now, n.GetStateChangedAt()))
	row("Connected", "%s", yesNo(n.GetConnected()))
	if n.GetQuarantined() {
		row("QUARANTINED", "since %s: %s; every certificate of the node is refused: create a token with 'forlockctl tokens create --for-node %s' for its host",
			when(now, n.GetQuarantinedAt()), n.GetQuarantineReason(), n.GetName())
	} else {
		row("Quarantined", "no")
	}
	row("Last heartbeat", "%s", age(now, n.GetLastHeartbeatAt()))
	row("Ping RTT", "%s (answered %s)", rtt(n.GetLastPingRtt()), age(now, n.GetLastPingAt()))
	row("Agent version", "%s", orDash(agentVersion(n)))
	row("Capabilities", "%s", orDash(strings.Join(n.GetCapabilities(), ",")))
	row("Hostname", "%s", orDash(f.GetHostname()))
	row("OS", "%s", orDash(f.GetOs()))
	row("Kernel", "%s", orDash(f.GetKernel()))
	row("Arch", "%s", orDash(f.GetArch()))
	uptime := "-"
	if f.GetUptime() != nil {
		uptime = shortDuration(f.GetUptime().AsDuration())
	}
	row("Uptime", "%s", uptime)
	row("Disk", "%s", usage(f.GetDiskTotalBytes(), f.GetDiskFreeBytes()))
	row("Memory", "%s", usage(f.GetMemoryTotalBytes(), f.GetMemoryAvailableBytes()))
	row("Cert serial", "%s", orDash(n.GetCertificateSerial()))
	row("Cert not after", "%s", when(now, n.GetCertificateNotAfter()))
	row("Enrolled", "%s", when(now, n.GetEnrolledAt()))
	row("Last enrolled", "%s", when(now, n.GetLastEnrolledAt()))
	row("Enrollments", "%d", n.GetEnrollments())
	if err := flush(tw); err != nil {
		return err
	}
	return printReleases(w, now, n.GetRelease(), n.GetReleaseHistory())
}

// printReleases shows the node's current release (each service's image
// and short image ID) and its earlier releases, newest first.
func printReleases(w io.Writer, now time.Time, cur *forlockv1.Release, history []*forlockv1.Release) error {
	if cur.GetId() == "" && len(history) == 0 {
		_, err := fmt.Fprintln(w, "\nRelease: none recorded yet (the agent records it at its first upgrade)")
		return err
	}
	if cur.GetId() != "" {
		fmt.Fprintf(w, "\nRelease: %s (since %s, job %s)\n", shortRelease(cur.GetId()), when(now, cur.GetAt()), orDash(cur.GetJobId()))
		tw := newTable(w)
		fmt.Fprintln(tw, "  SERVICE\tIMAGE\tIMAGE ID")
		for _, s := range cur.GetServices() {
			fmt.Fprintf(tw, "  %s\t%s\t%s\n", s.GetService(), orDash(s.GetImage()), orDash(shortImageID(s.GetImageId())))
		}
		if err := flush(tw); err != nil {
			return err
		}
	}
	if len(history) == 0 {
		return nil
	}
	fmt.Fprintln(w, "\nHistory:")
	tw := newTable(w)
	fmt.Fprintln(tw, "  RELEASE\tAT\tAPI IMAGE\tJOB")
	for _, r := range history {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", shortRelease(r.GetId()), when(now, r.GetAt()), orDash(serviceImage(r, "api")), orDash(r.GetJobId()))
	}
	return flush(tw)
}

// shortRelease is a release ID's first 12 characters, as --release takes.
func shortRelease(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return orDash(id)
}

// shortImageID is an image ID's first 12 hex digits, as docker prints it.
func shortImageID(id string) string {
	id = strings.TrimPrefix(id, "sha256:")
	if len(id) > 12 {
		id = id[:12]
	}
	return id
}

func serviceImage(r *forlockv1.Release, service string) string {
	for _, s := range r.GetServices() {
		if s.GetService() == service {
			return s.GetImage()
		}
	}
	return ""
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func newNodesRemoveCmd(a *app) *cobra.Command {
	var yes bool
	cmd := &cobra.Command{
		Use:   "remove NODE",
		Short: "Remove a node from the fleet and refuse its certificates",
		Long: `Remove a node from the registry (by ID or name). Its control stream is closed
and its certificates are refused from then on. To bring the host back, give its
agent a fresh join token.

Asks for confirmation when standard input is a terminal; otherwise --yes is
required.`,
		Args: exactArg("NODE (ID or name)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			node := args[0]
			s, err := resolveSettings(a.conn, a.io.Getenv)
			if err != nil {
				return err
			}
			if !yes {
				if !isTerminal(a.io.In) {
					return usageErrorf("refusing to remove node %q without confirmation: pass --yes", node)
				}
				ok, err := confirm(a.io.In, a.io.Err, fmt.Sprintf("Remove node %q from %s? Its certificates stop working at once. [y/N]: ", node, s.address))
				if err != nil {
					return err
				}
				if !ok {
					return fmt.Errorf("node %q not removed: not confirmed", node)
				}
			}
			return a.callNodes(cmd.Context(), s, func(ctx context.Context, c forlockv1.NodeServiceClient) error {
				resp, err := c.RemoveNode(ctx, &forlockv1.RemoveNodeRequest{Node: node})
				if err != nil {
					return err
				}
				if a.output == outputJSON {
					return printJSON(a.io.Out, resp)
				}
				_, err = fmt.Fprintf(a.io.Out, "Removed node %s (%s). To bring the host back, give its agent a fresh join token.\n",
					resp.GetNode().GetName(), resp.GetNode().GetId())
				return err
			})
		},
	}
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation")
	return cmd
}

// isTerminal reports whether r is an interactive terminal.
func isTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// confirm writes prompt to w and reads one line from r; only "y" or "yes"
// (any case) confirms. End of input means no.
func confirm(r io.Reader, w io.Writer, prompt string) (bool, error) {
	if _, err := fmt.Fprint(w, prompt); err != nil {
		return false, fmt.Errorf("write prompt: %w", err)
	}
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil && line == "" {
		if err == io.EOF {
			fmt.Fprintln(w)
			return false, nil
		}
		return false, fmt.Errorf("read answer: %w", err)
	}
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return true, nil
	}
	return false, nil
}
