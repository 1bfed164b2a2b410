package commands

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/term"

	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// checkRow is one line of a health table: a check of a node, or, for a
// node without check results, the reason (task state, missing report).
type checkRow struct {
	node    string
	check   string
	status  string // OK, WARN, CRITICAL, UNKNOWN; a task state; or ""
	message string
	checked string // age of the report; only shown for cached reports
}

// checkStatusNames are the STATUS cells of the check statuses, as the agent
// writes them in detail lines too.
var checkStatusNames = map[forlockv1.CheckStatus]string{
	forlockv1.CheckStatus_CHECK_STATUS_OK:       "OK",
	forlockv1.CheckStatus_CHECK_STATUS_WARN:     "WARN",
	forlockv1.CheckStatus_CHECK_STATUS_CRITICAL: "CRITICAL",
	forlockv1.CheckStatus_CHECK_STATUS_UNKNOWN:  "UNKNOWN",
}

func checkStatusName(s forlockv1.CheckStatus) string {
	if n, ok := checkStatusNames[s]; ok {
		return n
	}
	return "UNKNOWN"
}

const critical = "CRITICAL"

// reportRows turns a structured report into rows.
func reportRows(node string, h *forlockv1.HealthReport) []checkRow {
	rows := make([]checkRow, 0, len(h.GetChecks()))
	for _, c := range h.GetChecks() {
		rows = append(rows, checkRow{node: node, check: orDash(c.GetName()), status: checkStatusName(c.GetStatus()),
			message: oneLine(c.GetMessage())})
	}
	return rows
}

// detailRow reads an agent detail line "NAME STATUS MESSAGE", e.g. "disk
// OK 63% free (81.8 GiB of 252 GiB)". A line of another form becomes the
// row's message with no check name or status.
func detailRow(node, line string) checkRow {
	name, rest, _ := strings.Cut(oneLine(line), " ")
	status, msg, _ := strings.Cut(rest, " ")
	for _, s := range checkStatusNames {
		if status == s && name != "" {
			return checkRow{node: node, check: name, status: status, message: msg}
		}
	}
	return checkRow{node: node, check: "-", message: oneLine(line)}
}

// taskRows are the rows of one health_check task: the structured report
// if the agent sent one, else its detail lines. A task that did not
// succeed and names no CRITICAL check adds a row with its state and
// message, so the reason it failed (or was skipped) is on screen.
func taskRows(t *forlockv1.Task) []checkRow {
	node := orDash(t.GetNodeName())
	var rows []checkRow
	if len(t.GetHealth().GetChecks()) > 0 {
		rows = reportRows(node, t.GetHealth())
	} else {
		for _, d := range t.GetDetails() {
			rows = append(rows, detailRow(node, d))
		}
	}
	if len(rows) == 0 || (t.GetState() != forlockv1.TaskState_TASK_STATE_SUCCEEDED && !hasCritical(rows)) {
		rows = append(rows, checkRow{node: node, check: "-", status: taskStateName(t.GetState()), message: oneLine(t.GetMessage())})
	}
	return rows
}

func hasCritical(rows []checkRow) bool {
	for _, r := range rows {
		if r.status == critical {
			return true
		}
	}
	return false
}

// nodeRows are the rows of a node's latest heartbeat report, with its age.
func nodeRows(now time.Time, n *forlockv1.Node) []checkRow {
	h := n.GetHealth()
	if len(h.GetChecks()) == 0 {
		why := "no health report yet: the agent has sent none since the control plane started"
		if n.GetState() != forlockv1.NodeState_NODE_STATE_ONLINE {
			why += " (node " + stateName(n.GetState()) + ")"
		}
		return []checkRow{{node: n.GetName(), check: "-", message: why, checked: "-"}}
	}
	rows := reportRows(n.GetName(), h)
	for i := range rows {
		rows[i].checked = age(now, h.GetCheckedAt())
	}
	return rows
}

// printHealthTable writes rows as NODE CHECK STATUS MESSAGE (and CHECKED
// with withAge). With colour, STATUS is green, yellow or red.
func printHealthTable(w io.Writer, rows []checkRow, withAge, colour bool) error {
	tw := newTable(w)
	head := "NODE\tCHECK\tSTATUS\tMESSAGE"
	if withAge {
		head = "NODE\tCHECK\tSTATUS\tCHECKED\tMESSAGE"
	}
	fmt.Fprintln(tw, head)
	for _, r := range rows {
		status := paint(orDash(r.status), colour)
		if withAge {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.node, r.check, status, r.checked, orDash(r.message))
		} else {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.node, r.check, status, orDash(r.message))
		}
	}
	return flush(tw)
}

// nodeContainers pairs a node name with its containers.
type nodeContainers struct {
	node       string
	containers []*forlockv1.ContainerStatus
}

// printContainerTable writes one line per container, after a blank line;
// nothing when no node reported containers.
func printContainerTable(w io.Writer, now time.Time, sets []nodeContainers) error {
	var buf bytes.Buffer
	tw := newTable(&buf)
	fmt.Fprintln(tw, "NODE\tCONTAINER\tSERVICE\tSTATE\tHEALTH\tRESTARTS\tIMAGE\tUP\tCPU\tMEMORY")
	n := 0
	for _, s := range sets {
		for _, c := range s.containers {
			n++
			up := "-"
			if c.GetStartedAt() != nil && c.GetState() == "running" {
				up = shortDuration(max(now.Sub(c.GetStartedAt().AsTime()), 0))
			}
			mem := "-"
			if c.GetMemoryBytes() > 0 {
				mem = humanBytes(c.GetMemoryBytes())
				if l := c.GetMemoryLimitBytes(); l > 0 {
					mem += " / " + humanBytes(l)
				}
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%.1f%%\t%s\n", s.node, orDash(c.GetName()), orDash(c.GetService()),
				orDash(c.GetState()), orDash(c.GetHealth()), c.GetRestartCount(), orDash(shortImage(c.GetImage())), up,
				c.GetCpuPercent(), mem)
		}
	}
	if n == 0 {
		return nil
	}
	if err := flush(tw); err != nil {
		return err
	}
	if _, err := fmt.Fprintf(w, "\n%s", buf.String()); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return nil
}

// shortImage drops the registry host, path and digest of an image
// reference: "registry.example.com/forlock/api:1.4.2@sha256:…" is
// "api:1.4.2".
func shortImage(ref string) string {
	ref, _, _ = strings.Cut(ref, "@")
	if i := strings.LastIndexByte(ref, '/'); i >= 0 {
		ref = ref[i+1:]
	}
	return ref
}

// ANSI colours of the STATUS cells. Every cell gets a code of the same
// length, so that tabwriter, which counts the escape bytes, still aligns.
const (
	ansiRed     = "\x1b[31m"
	ansiGreen   = "\x1b[32m"
	ansiYellow  = "\x1b[33m"
	ansiDefault = "\x1b[39m"
	ansiReset   = "\x1b[0m"
)

// paint colours a status cell when colour is on.
func paint(status string, colour bool) string {
	if !colour {
		return status
	}
	code := ansiDefault
	switch status {
	case "OK", "succeeded":
		code = ansiGreen
	case "WARN", "UNKNOWN", "skipped", "cancelled":
		code = ansiYellow
	case critical, "failed", "interrupted":
		code = ansiRed
	}
	return code + status + ansiReset
}

// colour reports whether tables may use colours: stdout is a terminal and
// neither NO_COLOR nor TERM=dumb says otherwise.
func (a *app) colour() bool {
	if a.io.Getenv("NO_COLOR") != "" || a.io.Getenv("TERM") == "dumb" {
		return false
	}
	f, ok := a.io.Out.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
