package commands

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Output formats for -o.
const (
	outputTable = "table"
	outputJSON  = "json"
)

// printJSON writes m as one indented protojson document. Unset fields are
// left out; field names are the proto JSON names (lowerCamelCase). protojson
// varies its whitespace on purpose, so the output is re-indented to stay
// byte-stable for scripts that diff it.
func printJSON(w io.Writer, m proto.Message) error {
	b, err := protojson.Marshal(m)
	if err != nil {
		return fmt.Errorf("encode %s as JSON: %w", m.ProtoReflect().Descriptor().FullName(), err)
	}
	return writeIndented(w, b)
}

// writeIndented writes JSON indented, with a final newline.
func writeIndented(w io.Writer, b []byte) error {
	var buf bytes.Buffer
	if err := json.Indent(&buf, b, "", "  "); err != nil {
		return fmt.Errorf("indent JSON: %w", err)
	}
	buf.WriteByte('\n')
	if _, err := buf.WriteTo(w); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return nil
}

// newTable returns a tabwriter for aligned columns separated by tabs.
func newTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
}

// flush finishes a table and reports write errors.
func flush(tw *tabwriter.Writer) error {
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return nil
}

// age describes a time relative to now: "12s ago", "in 59m", or "never".
func age(now time.Time, ts *timestamppb.Timestamp) string {
	if ts == nil {
		return "never"
	}
	d := now.Sub(ts.AsTime())
	if d < 0 {
		return "in " + shortDuration(-d)
	}
	return shortDuration(d) + " ago"
}

// when gives an absolute UTC time followed by its age.
func when(now time.Time, ts *timestamppb.Timestamp) string {
	if ts == nil {
		return "never"
	}
	return ts.AsTime().UTC().Format("2006-01-02 15:04:05 UTC") + " (" + age(now, ts) + ")"
}

// shortDuration rounds d to at most two units: "45s", "12m", "3h5m", "2d4h".
func shortDuration(d time.Duration) string {
	const day = 24 * time.Hour
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d/time.Second))
	case d < 10*time.Minute:
		return twoUnits(int(d/time.Minute), "m", int(d%time.Minute/time.Second), "s")
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d/time.Minute))
	case d < day:
		return twoUnits(int(d/time.Hour), "h", int(d%time.Hour/time.Minute), "m")
	default:
		return twoUnits(int(d/day), "d", int(d%day/time.Hour), "h")
	}
}

func twoUnits(a int, au string, b int, bu string) string {
	if b == 0 {
		return fmt.Sprintf("%d%s", a, au)
	}
	return fmt.Sprintf("%d%s%d%s", a, au, b, bu)
}

// rtt formats a round-trip time with sensible precision.
func rtt(d *durationpb.Duration) string {
	if d == nil {
		return "-"
	}
	v := d.AsDuration()
	switch {
	case v < time.Millisecond:
		return fmt.Sprintf("%dµs", v.Microseconds())
	case v < time.Second:
		return fmt.Sprintf("%.1fms", float64(v)/float64(time.Millisecond))
	default:
		return v.Round(time.Millisecond).String()
	}
}

// gib formats a byte count in GiB with one decimal.
func gib(b uint64) string {
	return fmt.Sprintf("%.1f GiB", float64(b)/(1<<30))
}

// usage describes used = total - free as "42.0% used (8.4 of 20.0 GiB)".
func usage(total, free uint64) string {
	if total == 0 {
		return "-"
	}
	used := total - min(free, total)
	return fmt.Sprintf("%.1f%% used (%s of %s)", float64(used)*100/float64(total), strings.TrimSuffix(gib(used), " GiB"), gib(total))
}

// labelString renders labels sorted by key as "k=v,k2=v2", or "<none>".
func labelString(labels map[string]string) string {
	if len(labels) == 0 {
		return "<none>"
	}
	parts := make([]string, 0, len(labels))
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		parts = append(parts, k+"="+labels[k])
	}
	return strings.Join(parts, ",")
}

// orDash returns s, or "-" when it is empty, so table cells never vanish.
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
