package commands

import (
	"fmt"
	"io"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// shortSHA is the first 12 hex digits of a checksum, enough to tell
// artifacts apart on screen; -o json and 'backups get' show it whole.
func shortSHA(sum string) string {
	const n = 12
	if len(sum) <= n {
		return orDash(sum)
	}
	return sum[:n]
}

// printArtifactTable lists artifacts, one per line.
func printArtifactTable(w io.Writer, arts []*forlockv1.Artifact) error {
	tw := newTable(w)
	fmt.Fprintln(tw, "NODE\tKIND\tFILE\tSIZE\tSHA256\tLOCATION")
	for _, a := range arts {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", orDash(a.GetNodeName()), kindName(a.GetKind()), orDash(oneLine(a.GetFileName())),
			humanBytes(a.GetSizeBytes()), shortSHA(a.GetSha256()), orDash(oneLine(a.GetLocation())))
	}
	return flush(tw)
}

// printRestorePointTable lists restore points, one per line. SIZE is the
// sum of the stored artifacts' sizes.
func printRestorePointTable(w io.Writer, now time.Time, rps []*forlockv1.RestorePoint) error {
	tw := newTable(w)
	fmt.Fprintln(tw, "ID\tNODE\tCREATED\tKINDS\tSIZE\tDRILL")
	for _, rp := range rps {
		var kinds []string
		var size uint64
		for _, a := range rp.GetArtifacts() {
			k := kindName(a.GetKind())
			if a.GetState() == forlockv1.ArtifactState_ARTIFACT_STATE_DELETED {
				k += "(deleted)"
			}
			kinds = append(kinds, k)
			size += a.GetSizeBytes()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", rp.GetId(), orDash(rp.GetNodeName()), createdCell(now, rp.GetCreatedAt()),
			orDash(strings.Join(kinds, ",")), humanBytes(size), drillCell(now, rp.GetLastDrill()))
	}
	return flush(tw)
}

// createdCell is an absolute UTC time with its age, short enough for a
// table: "2026-03-01 11:58Z (2m ago)".
func createdCell(now time.Time, ts *timestamppb.Timestamp) string {
	if ts == nil {
		return "-"
	}
	return utcMinute(ts) + " (" + age(now, ts) + ")"
}

// utcMinute is a time to the minute in UTC: "2026-03-01 11:58Z".
func utcMinute(ts *timestamppb.Timestamp) string { return utcText(ts, "2006-01-02 15:04Z") }

// utcSecond is a time to the second, in UTC.
func utcSecond(ts *timestamppb.Timestamp) string { return utcText(ts, pitrLayoutUTC+"Z") }

// utcText formats a time in UTC with layout, "-" when unset.
func utcText(ts *timestamppb.Timestamp, layout string) string {
	if ts == nil {
		return "-"
	}
	return ts.AsTime().UTC().Format(layout)
}

// artifactStateName is the short name of an artifact state.
func artifactStateName(s forlockv1.ArtifactState) string {
	switch s {
	case forlockv1.ArtifactState_ARTIFACT_STATE_AVAILABLE:
		return "available"
	case forlockv1.ArtifactState_ARTIFACT_STATE_DELETED:
		return "deleted"
	}
	return "unknown"
}

// printArtifactDetail shows one artifact of the catalog.
func printArtifactDetail(w io.Writer, now time.Time, a *forlockv1.Artifact) error {
	tw := newTable(w)
	row := func(k, format string, args ...any) { fmt.Fprintf(tw, k+":\t"+format+"\n", args...) }
	row("ID", "%s", a.GetId())
	row("Kind", "%s", kindName(a.GetKind()))
	switch {
	case a.GetPostgresFormat() == forlockv1.PostgresFormat_POSTGRES_FORMAT_PHYSICAL:
		row("Format", "physical (pg_basebackup of PostgreSQL %s; restores onto %s only)", orDash(oneLine(a.GetPostgresVersion())), orDash(oneLine(a.GetPostgresVersion())))
	case a.GetKind() == forlockv1.ArtifactKind_ARTIFACT_KIND_POSTGRES:
		row("Format", "logical (pg_dump)")
	}
	row("State", "%s", artifactStateName(a.GetState()))
	row("Node", "%s (%s)", orDash(a.GetNodeName()), orDash(a.GetNodeId()))
	row("Restore point", "%s", orDash(a.GetRestorePointId()))
	row("Created", "%s", when(now, a.GetCreatedAt()))
	row("File", "%s", orDash(oneLine(a.GetFileName())))
	row("Location", "%s", orDash(oneLine(a.GetLocation())))
	row("Size", "%s (%d bytes)", humanBytes(a.GetSizeBytes()), a.GetSizeBytes())
	if a.GetPlainBytes() > 0 {
		row("Plain size", "%s (%d bytes)", humanBytes(a.GetPlainBytes()), a.GetPlainBytes())
	}
	row("SHA-256", "%s", orDash(a.GetSha256()))
	row("Compression", "%s", orDash(a.GetCompression()))
	row("Cipher", "%s", orDash(a.GetCipher()))
	row("Key ID", "%s", orDash(a.GetKeyId()))
	row("Job", "%s", orDash(a.GetJobId()))
	return flush(tw)
}

// drillCell is a restore point's last drill for a table: "passed 2h ago",
// "FAILED 5m ago" (the reason is in the JSON output and the drill's job),
// or "-" when none ran.
func drillCell(now time.Time, d *forlockv1.DrillResult) string {
	if d == nil {
		return "-"
	}
	if d.GetPassed() {
		return "passed " + age(now, d.GetStartedAt())
	}
	return "FAILED " + age(now, d.GetStartedAt())
}
