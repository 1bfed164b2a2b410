package commands

import (
	"fmt"
	"io"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// drillWindow: a node none of whose restore points passed a drill within
// it is flagged by status (the guide's weekly verification test).
const drillWindow = 7 * 24 * time.Hour

// drillFlags names, in node order, the nodes status flags for drills: no
// restore point passed a drill in the last drillWindow, or the newest drill
// failed. Only nodes with restore points are judged: a node never backed
// up is a backup problem, not a drill one.
func drillFlags(now time.Time, nodes []*forlockv1.Node, rps []*forlockv1.RestorePoint) []string {
	type seen struct {
		last       *forlockv1.DrillResult
		lastPassed *timestamppb.Timestamp
	}
	by := map[string]*seen{}
	for _, rp := range rps {
		s := by[rp.GetNodeId()]
		if s == nil {
			s = &seen{}
			by[rp.GetNodeId()] = s
		}
		if d := rp.GetLastDrill(); d != nil && (s.last == nil || d.GetStartedAt().AsTime().After(s.last.GetStartedAt().AsTime())) {
			s.last = d
		}
		if t := rp.GetLastPassedDrillAt(); t != nil && (s.lastPassed == nil || t.AsTime().After(s.lastPassed.AsTime())) {
			s.lastPassed = t
		}
	}
	var out []string
	for _, n := range nodes {
		s := by[n.GetId()]
		if s == nil {
			continue // never backed up
		}
		switch {
		case s.last != nil && !s.last.GetPassed():
			out = append(out, fmt.Sprintf("%s: last drill FAILED %s: %s", n.GetName(), age(now, s.last.GetStartedAt()), orDash(s.last.GetReason())))
		case s.lastPassed == nil:
			out = append(out, n.GetName()+": no restore point ever passed a drill (forlockctl backups verify --latest --node "+n.GetName()+")")
		case now.Sub(s.lastPassed.AsTime()) > drillWindow:
			out = append(out, fmt.Sprintf("%s: no drill passed in the last 7 days (last %s)", n.GetName(), utcMinute(s.lastPassed)))
		}
	}
	return out
}

// printDrillFlags writes the drill section of status, if any node is
// flagged.
func printDrillFlags(w io.Writer, flags []string) error {
	if len(flags) == 0 {
		return nil
	}
	if _, err := fmt.Fprintf(w, "\nrestore drills (!):\n"); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	for _, f := range flags {
		if _, err := fmt.Fprintf(w, "  ! %s\n", f); err != nil {
			return fmt.Errorf("write output: %w", err)
		}
	}
	return nil
}
