package commands

import (
	"bytes"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/timestamppb"

	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

func TestDrillFlags(t *testing.T) {
	ts := func(d time.Duration) *timestamppb.Timestamp { return timestamppb.New(renderNow.Add(-d)) }
	nodes := []*forlockv1.Node{{Id: "1", Name: "fresh"}, {Id: "2", Name: "failed"}, {Id: "3", Name: "stale"}, {Id: "4", Name: "never"}, {Id: "5", Name: "nobackup"}}
	rps := []*forlockv1.RestorePoint{
		{NodeId: "1", LastDrill: &forlockv1.DrillResult{Passed: true, StartedAt: ts(time.Hour)}, LastPassedDrillAt: ts(time.Hour)},
		// An older failure on another restore point of a node whose newest drill passed: not flagged.
		{NodeId: "1", LastDrill: &forlockv1.DrillResult{StartedAt: ts(2 * time.Hour), Reason: "old"}},
		{NodeId: "2", LastDrill: &forlockv1.DrillResult{StartedAt: ts(5 * time.Minute), Reason: "pg_restore exited with status 1"}, LastPassedDrillAt: ts(48 * time.Hour)},
		{NodeId: "3", LastDrill: &forlockv1.DrillResult{Passed: true, StartedAt: ts(8 * 24 * time.Hour)}, LastPassedDrillAt: ts(8 * 24 * time.Hour)},
		{NodeId: "4"},
	}
	flags := drillFlags(renderNow, nodes, rps)
	require.Equal(t, []string{
		"failed: last drill FAILED 5m ago: pg_restore exited with status 1",
		"stale: no drill passed in the last 7 days (last 2026-02-21 12:00Z)",
		"never: no restore point ever passed a drill (forlockctl backups verify --latest --node never)",
	}, flags)
	var out bytes.Buffer
	require.NoError(t, printDrillFlags(&out, flags))
	require.Contains(t, out.String(), "restore drills (!):\n  ! failed: last drill FAILED")
	out.Reset()
	require.NoError(t, printDrillFlags(&out, nil))
	require.Empty(t, out.String())
}
