package commands

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// pitrLayoutUTC is the plain form --to-time takes, read as UTC.
const pitrLayoutUTC = "2006-01-02 15:04:05"

// parseToTime reads --to-time: RFC 3339 with its offset, or
// "YYYY-MM-DD HH:MM:SS" as UTC.
func parseToTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if t, err := time.ParseInLocation(pitrLayoutUTC, s, time.UTC); err == nil {
		return t, nil
	}
	return time.Time{}, usageErrorf(`--to-time %q: give RFC 3339 ("2026-12-03T18:02:11Z") or "2026-12-03 18:02:11" (UTC)`, s)
}

// parsePITR checks a point-in-time restore's command line.
func (f *restoreFlags) parsePITR(fs *pflag.FlagSet, node string, args []string) (*restoreRequest, error) {
	switch {
	case fs.Changed("to-time") && f.toLatest:
		return nil, usageErrorf("--to-time and --to-latest cannot be combined: give one of them")
	case f.latest:
		return nil, usageErrorf("--latest restores a restore point, --to-time/--to-latest a point in time: give one of them")
	case len(args) > 0:
		return nil, usageErrorf("--to-time/--to-latest pick the base backup and WAL themselves: drop the IDs (%s)", strings.Join(args, " "))
	case fs.Changed("only"):
		return nil, usageErrorf("a point-in-time restore restores PostgreSQL only: drop --only")
	case fs.Changed("from-node") && strings.TrimSpace(f.fromNode) == "":
		return nil, usageErrorf("--from-node: empty node name: give a node name or ID")
	}
	spec := &forlockv1.RestoreSpec{ToLatest: f.toLatest, SourceNode: strings.TrimSpace(f.fromNode)}
	if fs.Changed("to-time") {
		t, err := parseToTime(f.toTime)
		if err != nil {
			return nil, err
		}
		spec.ToTime = timestamppb.New(t)
	}
	return &restoreRequest{node: node, spec: spec}, nil
}

// pitrPrompt asks before a point-in-time restore.
func pitrPrompt(r *restoreRequest, addr string) string {
	target := "the end of its archived WAL"
	if t := r.spec.GetToTime(); t != nil {
		target = t.AsTime().UTC().Format(time.RFC3339Nano)
	}
	from := ""
	if n := r.spec.GetSourceNode(); n != "" {
		from = fmt.Sprintf(" from node %q's backups", n)
	}
	return fmt.Sprintf("Restore node %q's PostgreSQL to %s%s (physical base backup + WAL replay) via %s?\nThis stops the node's API and replaces its database. [y/N]: ",
		r.node, target, from, addr)
}

// listWindows reads the recovery windows; a control plane without them
// (Unimplemented) has none.
func listWindows(ctx context.Context, c forlockv1.BackupServiceClient, node string) (*forlockv1.ListRecoveryWindowsResponse, error) {
	resp, err := c.ListRecoveryWindows(ctx, &forlockv1.ListRecoveryWindowsRequest{Node: node})
	if status.Code(err) == codes.Unimplemented {
		return &forlockv1.ListRecoveryWindowsResponse{}, nil
	}
	return resp, err
}

// printWindowTable prints each node's point-in-time window.
func printWindowTable(w io.Writer, ws []*forlockv1.RecoveryWindow) error {
	tw := newTable(w)
	fmt.Fprintln(tw, "NODE\tPITR FROM\tPITR TO\tTIMELINE\tWAL\tGAPS")
	for _, win := range ws {
		gaps := make([]string, 0, len(win.GetGaps()))
		for _, g := range win.GetGaps() {
			gaps = append(gaps, fmt.Sprintf("%s..%s (after %s)", g.GetAfterLsn(), orDash(g.GetBeforeLsn()), utcSecond(g.GetAfterTime())))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", orDash(win.GetNodeName()), utcSecond(win.GetEarliest()), utcSecond(win.GetLatest()),
			win.GetTimeline(), humanBytes(win.GetWalBytes()), orDash(strings.Join(gaps, "; ")))
	}
	return flush(tw)
}

// printWalRanges lists the WAL a point-in-time restore replays.
func printWalRanges(w io.Writer, wal []*forlockv1.WalRange) error {
	if len(wal) == 0 {
		return nil
	}
	if _, err := fmt.Fprintln(w, "\nthen this WAL:"); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	tw := newTable(w)
	fmt.Fprintln(tw, "TIMELINE\tFROM\tTO\tUNTIL\tSIZE")
	for _, r := range wal {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", r.GetTimeline(), r.GetStartLsn(), r.GetEndLsn(), utcSecond(r.GetEndTime()), humanBytes(r.GetSizeBytes()))
	}
	return flush(tw)
}

// printJSONMerged prints the fields of several messages as one JSON object.
func printJSONMerged(w io.Writer, msgs ...proto.Message) error {
	out := map[string]json.RawMessage{}
	for _, m := range msgs {
		b, err := protojson.Marshal(m)
		if err != nil {
			return fmt.Errorf("encode %s as JSON: %w", m.ProtoReflect().Descriptor().FullName(), err)
		}
		var fields map[string]json.RawMessage
		if err := json.Unmarshal(b, &fields); err != nil {
			return fmt.Errorf("encode JSON: %w", err)
		}
		for k, v := range fields {
			out[k] = v
		}
	}
	b, err := json.Marshal(out)
	if err != nil {
		return fmt.Errorf("encode JSON: %w", err)
	}
	return writeIndented(w, b)
}
