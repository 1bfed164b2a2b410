package jobs

import (
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/forlock/fleet/controlplane/internal/registry"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// deleteArtifacts resolves what a delete_backup job deletes. Artifacts on
// a host directory can only be deleted by their own node; S3 objects by any
// node whose agent reaches the bucket.
func (e *Engine) deleteArtifacts(d *forlockv1.DeleteBackupSpec, targets []registry.Target) ([]*forlockv1.Artifact, error) {
	if len(targets) != 1 {
		return nil, invalid("a delete_backup job targets exactly one node; %d matched", len(targets))
	}
	target := targets[0]
	var arts []*forlockv1.Artifact
	switch {
	case len(d.GetArtifactIds()) > 0 && d.GetRestorePointId() != "":
		return nil, invalid("delete_backup: give artifact IDs or a restore point, not both")
	case len(d.GetArtifactIds()) > 0:
		for _, id := range d.GetArtifactIds() {
			a, err := e.store.Artifact(id)
			if err != nil {
				return nil, invalid("artifact %q not found in the catalog", id)
			}
			arts = append(arts, a)
		}
	case d.GetRestorePointId() != "":
		rp, err := e.store.RestorePoint(d.GetRestorePointId())
		if err != nil {
			return nil, invalid("restore point %q not found in the catalog", d.GetRestorePointId())
		}
		for _, a := range rp.GetArtifacts() {
			if a.GetState() == forlockv1.ArtifactState_ARTIFACT_STATE_AVAILABLE {
				arts = append(arts, a)
			}
		}
		if len(arts) == 0 {
			return nil, invalid("restore point %s has no artifact left to delete", rp.GetId())
		}
	case len(d.GetWal()) > 0:
		return nil, e.checkWalDelete(d.GetWal(), target)
	default:
		return nil, invalid("delete_backup: give artifact IDs or a restore point")
	}
	for _, a := range arts {
		if a.GetState() != forlockv1.ArtifactState_ARTIFACT_STATE_AVAILABLE {
			return nil, invalid("artifact %s is already %s", a.GetId(), strings.ToLower(strings.TrimPrefix(a.GetState().String(), "ARTIFACT_STATE_")))
		}
		if !strings.HasPrefix(a.GetLocation(), "s3://") && a.GetNodeId() != target.ID {
			return nil, invalid("artifact %s is on the disk of node %s: delete it there (target %s)", a.GetId(), a.GetNodeName(), a.GetNodeName())
		}
	}
	return arts, nil
}

// markDeleted queues the restore points of a finished delete_backup job,
// with its artifacts marked deleted, for the commit that records the task.
// Callers hold e.mu.
func (e *Engine) markDeleted(arts []*forlockv1.Artifact) {
	for _, a := range arts {
		rp := e.pendingRestorePoint(a.GetRestorePointId())
		if rp == nil {
			continue // gone from the catalog meanwhile: nothing to mark
		}
		for _, c := range rp.GetArtifacts() {
			if c.GetId() == a.GetId() {
				c.State = forlockv1.ArtifactState_ARTIFACT_STATE_DELETED
			}
		}
	}
}

// pendingRestorePoint returns the restore point queued for the next commit,
// or a copy of the stored one, queued. Callers hold e.mu.
func (e *Engine) pendingRestorePoint(id string) *forlockv1.RestorePoint {
	if i := slices.IndexFunc(e.rps, func(rp *forlockv1.RestorePoint) bool { return rp.GetId() == id }); i >= 0 {
		return e.rps[i]
	}
	rp, err := e.store.RestorePoint(id)
	if err != nil {
		return nil
	}
	rp = proto.CloneOf(rp)
	e.rps = append(e.rps, rp)
	return rp
}

// usable reports whether every artifact of rp that only asks for is
// available.
func usable(rp *forlockv1.RestorePoint, only []forlockv1.ArtifactKind) bool {
	n := 0
	for _, a := range rp.GetArtifacts() {
		if len(only) > 0 && !slices.Contains(only, a.GetKind()) {
			continue
		}
		if a.GetState() != forlockv1.ArtifactState_ARTIFACT_STATE_AVAILABLE {
			return false
		}
		n++
	}
	return n > 0
}
