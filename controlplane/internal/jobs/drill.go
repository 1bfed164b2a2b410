package jobs

import (
	"slices"

	"google.golang.org/protobuf/proto"

	"github.com/forlock/fleet/controlplane/internal/registry"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// maxDrillCounts bounds the counts of a drill result kept in the catalog:
// an agent reports them, and an agent is not trusted to be brief.
const maxDrillCounts = 1000

// drillArtifacts resolves what a verify_backup job drills: a restore point
// of the target node, or its newest one whose artifacts are all available.
func (e *Engine) drillArtifacts(v *forlockv1.VerifyBackupSpec, target registry.Target) ([]*forlockv1.Artifact, error) {
	var rp *forlockv1.RestorePoint
	switch {
	case v.GetRestorePointId() != "" && v.GetLatest():
		return nil, invalid("verify_backup: give a restore point or latest, not both")
	case v.GetRestorePointId() != "":
		var err error
		if rp, err = e.store.RestorePoint(v.GetRestorePointId()); err != nil {
			return nil, invalid("restore point %q not found in the catalog", v.GetRestorePointId())
		}
		if rp.GetNodeId() != target.ID {
			return nil, invalid("restore point %s is node %s's, not %s's: a drill runs beside the node that made it", rp.GetId(), rp.GetNodeName(), target.Name)
		}
	case v.GetLatest():
		if err := e.store.ScanRestorePoints("", func(p *forlockv1.RestorePoint) bool {
			if p.GetNodeId() == target.ID && usable(p, nil) {
				rp = p
				return false
			}
			return true
		}); err != nil {
			return nil, err
		}
		if rp == nil {
			return nil, invalid("node %s has no restore point whose artifacts are all available: back it up first", target.Name)
		}
	default:
		return nil, invalid("verify_backup: give a restore point or latest")
	}
	for _, a := range rp.GetArtifacts() {
		if a.GetState() != forlockv1.ArtifactState_ARTIFACT_STATE_AVAILABLE {
			return nil, invalid("artifact %s of restore point %s is %s: nothing to drill", a.GetId(), rp.GetId(), a.GetState())
		}
	}
	if len(rp.GetArtifacts()) == 0 {
		return nil, invalid("restore point %s has no artifact", rp.GetId())
	}
	return rp.GetArtifacts(), nil
}

// drillOnly reports whether a task update's artifacts are a drill's report
// (IDs and results, no keys to check).
func drillOnly(arts []*forlockv1.Artifact) bool {
	return !slices.ContainsFunc(arts, func(a *forlockv1.Artifact) bool { return a.GetDrill() == nil || len(a.GetWrappedKey()) > 0 })
}

// recordDrill stores a finished drill's result on the restore point the
// job drilled (taken from the job's spec, not from the agent's report).
// A task that ended without a result (cancelled, interrupted, refused
// before the drill) is recorded as a failed drill with the task's state.
// Callers hold e.mu.
func (e *Engine) recordDrill(j *job, reported []*forlockv1.Artifact, state forlockv1.TaskState) {
	spec := j.pb.GetSpec().GetVerifyBackup().GetArtifacts()
	if len(spec) == 0 {
		return
	}
	var res *forlockv1.DrillResult
	for _, a := range reported {
		if d := a.GetDrill(); d != nil && slices.ContainsFunc(spec, func(s *forlockv1.Artifact) bool { return s.GetId() == a.GetId() }) {
			res = proto.CloneOf(d)
			break
		}
	}
	if res == nil {
		res = &forlockv1.DrillResult{Reason: "the drill task ended " + state.String() + " without a result"}
	}
	res.JobId = j.pb.GetId()
	if len(res.GetCounts()) > maxDrillCounts {
		res.Counts = res.Counts[:maxDrillCounts]
	}
	if state != forlockv1.TaskState_TASK_STATE_SUCCEEDED {
		res.Passed = false // a task that failed is not a drill that passed
	}
	rp := e.pendingRestorePoint(spec[0].GetRestorePointId())
	if rp == nil {
		return // deleted meanwhile
	}
	rp.LastDrill = res
	if res.GetPassed() {
		rp.LastPassedDrillAt = res.GetStartedAt()
	}
}
