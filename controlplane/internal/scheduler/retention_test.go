package scheduler

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/timestamppb"

	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

func TestExpired(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	rp := func(id, node string, age time.Duration, state forlockv1.ArtifactState) *forlockv1.RestorePoint {
		return &forlockv1.RestorePoint{Id: id, NodeId: node, JobId: id, CreatedAt: timestamppb.New(now.Add(-age)),
			Artifacts: []*forlockv1.Artifact{{State: state}}}
	}
	const ok, gone = forlockv1.ArtifactState_ARTIFACT_STATE_AVAILABLE, forlockv1.ArtifactState_ARTIFACT_STATE_DELETED
	day := 24 * time.Hour
	// Newest first, as the catalog scans.
	rps := []*forlockv1.RestorePoint{
		rp("a-new", "n1", 1*day, ok),
		rp("manual", "n1", 2*day, ok),
		rp("a-old", "n1", 40*day, ok),
		rp("a-older", "n1", 41*day, ok),
		rp("a-deleted", "n1", 50*day, gone),
		rp("a-only-n2", "n2", 90*day, ok),
		rp("b-old", "n1", 40*day, ok),
		rp("b-older", "n1", 41*day, ok),
		rp("x-old", "n1", 40*day, ok),
	}
	scheduleOf := func(r *forlockv1.RestorePoint) string {
		switch r.GetId()[0] {
		case 'a':
			return "daily"
		case 'b':
			return "forever"
		case 'x':
			return "removed-from-config"
		}
		return ""
	}
	scheds := []BackupSchedule{{Name: "daily", Keep: 30 * day}, {Name: "forever"}}
	var ids []string
	for _, r := range expired(rps, scheduleOf, scheds, now) {
		ids = append(ids, r.GetId())
	}
	// a-new is young; manual and x-old are no schedule's; a-deleted holds
	// nothing; a-only-n2 is n2's newest; b-* are kept forever.
	require.Equal(t, []string{"a-old", "a-older"}, ids)
}
