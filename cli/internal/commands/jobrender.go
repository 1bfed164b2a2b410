package commands

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"time"

	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// printJobTable lists jobs, one per line. TASKS is ok/failed/skipped/total;
// BY is the identity that submitted the job ("-" for one the control plane
// started by itself, e.g. a schedule).
func printJobTable(w io.Writer, now time.Time, jobs []*forlockv1.Job) error {
	tw := newTable(w)
	fmt.Fprintln(tw, "ID\tKIND\tSTATE\tTASKS\tCREATED\tBY")
	for _, j := range jobs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", j.GetId(), orDash(j.GetKind()), jobStateName(j.GetState()),
			countTasks(j.GetTasks()), age(now, j.GetCreatedAt()), orDash(j.GetCreatedBy()))
	}
	return flush(tw)
}

// printJobDetail shows a job's header, then its task table.
func printJobDetail(w io.Writer, now time.Time, j *forlockv1.Job) error {
	tw := newTable(w)
	row := func(k, format string, args ...any) { fmt.Fprintf(tw, k+":\t"+format+"\n", args...) }
	row("ID", "%s", j.GetId())
	row("Kind", "%s", orDash(j.GetKind()))
	row("State", "%s", jobStateName(j.GetState()))
	row("Tasks", "%s (ok/failed/skipped/total)", countTasks(j.GetTasks()))
	row("Target", "%s", targetString(j.GetTarget()))
	row("Rollout", "%s", rolloutString(j.GetRollout()))
	row("Created", "%s", when(now, j.GetCreatedAt()))
	row("Created by", "%s", submitter(j))
	if r := j.GetReason(); r != "" {
		row("Reason", "%s", oneLine(r))
	}
	if j.GetFinishedAt() != nil {
		row("Finished", "%s", when(now, j.GetFinishedAt()))
	}
	row("Deadline", "%s", when(now, j.GetDeadline()))
	if k := j.GetIdempotencyKey(); k != "" {
		row("Idempotency key", "%s", k)
	}
	if r := j.GetCancelReason(); r != "" {
		row("Cancel reason", "%s", r)
	}
	if err := flush(tw); err != nil {
		return err
	}
	if _, err := fmt.Fprintln(w); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return printTaskTable(w, j.GetTasks())
}

// printTaskTable shows one line per task and, under it, the task's details
// (e.g. health check results), indented.
func printTaskTable(w io.Writer, tasks []*forlockv1.Task) error {
	// Detail lines would split tabwriter's column blocks, so the rows are
	// aligned first and the details put in between afterwards.
	var rows bytes.Buffer
	tw := newTable(&rows)
	fmt.Fprintln(tw, "NODE\tSTATE\tPROGRESS\tMESSAGE")
	for _, t := range tasks {
		name := t.GetNodeName()
		if t.GetCanary() {
			name += " (canary)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", orDash(name), taskStateName(t.GetState()),
			orDash(progressString(t.GetProgress())), orDash(oneLine(t.GetMessage())))
	}
	if err := flush(tw); err != nil {
		return err
	}
	var b strings.Builder
	line, rest, _ := strings.Cut(rows.String(), "\n")
	b.WriteString(line + "\n")
	for _, t := range tasks {
		line, rest, _ = strings.Cut(rest, "\n")
		b.WriteString(line + "\n")
		for _, d := range t.GetDetails() {
			b.WriteString(detailIndent + oneLine(d) + "\n")
		}
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return nil
}

const detailIndent = "    "

// printHistory lists a job's events, one line each.
func printHistory(w io.Writer, events []*forlockv1.JobEvent) error {
	for _, ev := range events {
		if _, err := fmt.Fprintln(w, eventLine(ev)); err != nil {
			return fmt.Errorf("write output: %w", err)
		}
	}
	return nil
}

// eventLine renders one event: "#SEQ HH:MM:SSZ NODE STATE  PROGRESS  MESSAGE";
// job-level events name the job state instead of a node.
func eventLine(ev *forlockv1.JobEvent) string {
	var b strings.Builder
	fmt.Fprintf(&b, "#%d %s ", ev.GetSeq(), clock(ev))
	if ev.GetTaskId() == "" {
		fmt.Fprintf(&b, "job %s", jobStateName(ev.GetJobState()))
	} else {
		fmt.Fprintf(&b, "%s %s", orDash(ev.GetNodeName()), taskStateName(ev.GetTaskState()))
	}
	if p := progressString(ev.GetProgress()); p != "" {
		b.WriteString("  " + p)
	}
	if m := oneLine(ev.GetMessage()); m != "" {
		b.WriteString("  " + m)
	}
	return b.String()
}

func clock(ev *forlockv1.JobEvent) string {
	if ev.GetAt() == nil {
		return "--:--:--"
	}
	return ev.GetAt().AsTime().UTC().Format("15:04:05Z")
}

// progressString renders progress as "phase 42% 1.2/3.0 GiB message",
// leaving out what is unset; "" when nothing is.
func progressString(p *forlockv1.Progress) string {
	if p == nil {
		return ""
	}
	var parts []string
	if p.GetPhase() != "" {
		parts = append(parts, oneLine(p.GetPhase()))
	}
	if p.GetPercent() > 0 {
		parts = append(parts, fmt.Sprintf("%d%%", p.GetPercent()))
	}
	switch {
	case p.GetBytesTotal() > 0:
		parts = append(parts, humanBytes(p.GetBytesDone())+"/"+humanBytes(p.GetBytesTotal()))
	case p.GetBytesDone() > 0:
		parts = append(parts, humanBytes(p.GetBytesDone()))
	}
	if p.GetMessage() != "" {
		parts = append(parts, oneLine(p.GetMessage()))
	}
	return strings.Join(parts, " ")
}

// humanBytes formats a byte count with a binary unit: "512 B", "1.5 MiB".
func humanBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// oneLine keeps agent text from breaking table rows or the live display.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// submitter names who submitted a job and the scope its nodes were chosen
// in.
func submitter(j *forlockv1.Job) string {
	by := j.GetCreatedBy()
	if by == "" {
		return "- (the control plane: a schedule or policy; or a job older than identities)"
	}
	if sc := j.GetScope(); sc != "" {
		return by + " (scope " + sc + ")"
	}
	return by
}

func targetString(t *forlockv1.Target) string {
	switch {
	case t == nil:
		return "-"
	case t.GetAll():
		return "all nodes"
	case t.GetLabelSelector() != "":
		return "nodes matching " + t.GetLabelSelector()
	case len(t.GetNodes()) > 0:
		return "nodes " + strings.Join(t.GetNodes(), ",")
	}
	return "-"
}

func rolloutString(r *forlockv1.Rollout) string {
	parallel := "unlimited"
	if n := r.GetMaxParallel(); n > 0 {
		parallel = fmt.Sprint(n)
	}
	parts := []string{"max parallel " + parallel}
	if n := r.GetCanary(); n > 0 {
		parts = append(parts, fmt.Sprintf("canary %d", n))
	}
	if n := r.GetStopAfterFailures(); n > 0 {
		parts = append(parts, fmt.Sprintf("stop after %d failures", n))
	}
	if d := r.GetDeadline(); d != nil && d.AsDuration() > 0 {
		parts = append(parts, "deadline "+shortDuration(d.AsDuration()))
	}
	offline := "wait"
	if r.GetOfflinePolicy() == forlockv1.OfflinePolicy_OFFLINE_POLICY_SKIP {
		offline = "skip"
	}
	return strings.Join(append(parts, "offline nodes: "+offline), ", ")
}
