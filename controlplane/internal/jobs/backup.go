package jobs

import (
	"context"
	"crypto/rand"
	"fmt"
	"path"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/forlock/fleet/controlplane/internal/registry"
	"github.com/forlock/fleet/internal/backupstore"
	"github.com/forlock/fleet/internal/labels"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// allKinds are the artifacts of a full restore point, in order.
var allKinds = []forlockv1.ArtifactKind{
	forlockv1.ArtifactKind_ARTIFACT_KIND_POSTGRES, forlockv1.ArtifactKind_ARTIFACT_KIND_REDIS, forlockv1.ArtifactKind_ARTIFACT_KIND_CONFIG,
}

// KindName is the short name of an artifact kind: postgres, redis, config.
func KindName(k forlockv1.ArtifactKind) string {
	return strings.ToLower(strings.TrimPrefix(k.String(), "ARTIFACT_KIND_"))
}

// prepare validates a job's spec against its targets and returns the spec to
// store: for a restore, with the artifacts it will restore filled in.
func (e *Engine) prepare(spec *forlockv1.JobSpec, targets []registry.Target, scope labels.Selector) (*forlockv1.JobSpec, error) {
	out := proto.CloneOf(spec)
	switch k := out.GetKind().(type) {
	case *forlockv1.JobSpec_Backup:
		if e.kek == nil {
			return nil, invalid("backups need a key-encryption key, and this control plane has none")
		}
		return out, CheckBackup(k.Backup)
	case *forlockv1.JobSpec_Restore:
		if e.kek == nil {
			return nil, invalid("restores need a key-encryption key, and this control plane has none")
		}
		if len(targets) != 1 {
			return nil, invalid("a restore targets exactly one node; %d matched", len(targets))
		}
		if err := validKinds(k.Restore.GetOnly()); err != nil {
			return nil, err
		}
		if k.Restore.GetToTime() != nil || k.Restore.GetToLatest() {
			if err := e.resolvePITR(k.Restore, targets[0], scope, time.Now()); err != nil {
				return nil, err
			}
			return out, nil
		}
		arts, err := e.restoreArtifacts(k.Restore, targets[0], scope)
		if err != nil {
			return nil, err
		}
		k.Restore.Artifacts = arts
		k.Restore.Wal = nil
	case *forlockv1.JobSpec_VerifyBackup:
		if e.kek == nil {
			return nil, invalid("restore drills need a key-encryption key, and this control plane has none")
		}
		if len(targets) != 1 {
			return nil, invalid("a verify_backup job targets exactly one node; %d matched (forlockctl backups verify submits one job per node)", len(targets))
		}
		arts, err := e.drillArtifacts(k.VerifyBackup, targets[0])
		if err != nil {
			return nil, err
		}
		k.VerifyBackup.Artifacts = arts
	case *forlockv1.JobSpec_DeleteBackup:
		arts, err := e.deleteArtifacts(k.DeleteBackup, targets)
		if err != nil {
			return nil, err
		}
		k.DeleteBackup.Artifacts = arts
	case *forlockv1.JobSpec_Upgrade:
		if e.kek == nil && !k.Upgrade.GetSkipBackup() {
			return nil, invalid("an upgrade backs up first, and this control plane has no key-encryption key: configure one or pass skip_backup")
		}
		return out, validUpgrade(k.Upgrade)
	case *forlockv1.JobSpec_Rollback:
		return out, validRollback(k.Rollback)
	case *forlockv1.JobSpec_CertRotate:
		if e.certSrc == nil {
			return nil, invalid("certificate rotation needs Vault: configure vault in the control plane's config")
		}
		return out, validCertRotate(k.CertRotate)
	}
	return out, nil
}

func validKinds(kinds []forlockv1.ArtifactKind) error {
	for _, k := range kinds {
		if !slices.Contains(allKinds, k) {
			return invalid("unknown artifact kind %d: use postgres, redis or config", k)
		}
	}
	return nil
}

// samePostgresFormat compares formats, unset meaning logical.
func samePostgresFormat(a, b forlockv1.PostgresFormat) bool {
	norm := func(f forlockv1.PostgresFormat) forlockv1.PostgresFormat {
		if f == forlockv1.PostgresFormat_POSTGRES_FORMAT_UNSPECIFIED {
			return forlockv1.PostgresFormat_POSTGRES_FORMAT_LOGICAL
		}
		return f
	}
	return norm(a) == norm(b)
}

// CheckBackup checks a backup spec: its kinds, PostgreSQL format and
// destination. The control plane's backup schedules are checked by it at
// start, so a bad one fails then, not at its first fire time.
func CheckBackup(b *forlockv1.BackupSpec) error {
	if err := validKinds(b.GetOnly()); err != nil {
		return err
	}
	if _, ok := forlockv1.PostgresFormat_name[int32(b.GetPostgresFormat())]; !ok {
		return invalid("unknown PostgreSQL backup format %d: use logical or physical", b.GetPostgresFormat())
	}
	return validDestination(b.GetDestination())
}

// validDestination refuses relative, unclean and traversing paths and
// malformed bucket names. The agent checks the directory again against its
// allowed backup directories.
func validDestination(d *forlockv1.BackupDestination) error {
	switch k := d.GetKind().(type) {
	case nil:
		return nil
	case *forlockv1.BackupDestination_Dir:
		p := k.Dir
		if !path.IsAbs(p) || path.Clean(p) != p || strings.Contains(p, "..") || len(p) > 1024 {
			return invalid("destination %q: give an absolute, clean directory path without '..'", p)
		}
	case *forlockv1.BackupDestination_S3:
		if err := backupstore.ValidateBucket(k.S3.GetBucket()); err != nil {
			return invalid("%v", err)
		}
		p := k.S3.GetPrefix()
		if strings.HasPrefix(p, "/") || slices.Contains(strings.Split(p, "/"), "..") || len(p) > 512 {
			return invalid("prefix %q: a relative key prefix without '..'", p)
		}
	}
	return nil
}

// readsNode reports whether a submitter with scope may read node id's
// backups: an unscoped one any node's, even a node removed since (its
// backups stay restorable onto another), a scoped one only those of the
// registered nodes its scope matches.
func (e *Engine) readsNode(id string, scope labels.Selector) bool {
	return scope.String() == "" || e.reg.Matches(id, scope)
}

// sourceNode is the node whose backups a restore reads: its source_node,
// or else the target. One outside the submitter's scope is not found.
func (e *Engine) sourceNode(r *forlockv1.RestoreSpec, target registry.Target, scope labels.Selector) (registry.Target, error) {
	n := r.GetSourceNode()
	if n == "" {
		return target, nil
	}
	if t, ok := e.reg.Lookup(n); ok && e.readsNode(t.ID, scope) {
		return t, nil
	}
	return registry.Target{}, invalid("source node %q not found", n)
}

// restoreArtifacts resolves what a restore restores: only backups of nodes
// in the submitter's scope (one outside it is "not found", as for any
// other call).
func (e *Engine) restoreArtifacts(r *forlockv1.RestoreSpec, target registry.Target, scope labels.Selector) ([]*forlockv1.Artifact, error) {
	var arts []*forlockv1.Artifact
	switch {
	case len(r.GetArtifactIds()) > 0:
		for _, id := range r.GetArtifactIds() {
			a, err := e.store.Artifact(id)
			if err != nil {
				return nil, invalid("artifact %q not found in the catalog", id)
			}
			arts = append(arts, a)
		}
	case r.GetRestorePointId() != "":
		rp, err := e.store.RestorePoint(r.GetRestorePointId())
		if err != nil {
			return nil, invalid("restore point %q not found in the catalog", r.GetRestorePointId())
		}
		arts = rp.GetArtifacts()
	case r.GetLatest():
		source, err := e.sourceNode(r, target, scope)
		if err != nil {
			return nil, err
		}
		var found *forlockv1.RestorePoint
		if err := e.store.ScanRestorePoints("", func(rp *forlockv1.RestorePoint) bool {
			if rp.GetNodeId() == source.ID && usable(rp, r.GetOnly()) {
				found = rp
				return false
			}
			return true
		}); err != nil {
			return nil, err
		}
		if found == nil {
			return nil, invalid("node %s has no restore point with every artifact asked for: back it up first", source.Name)
		}
		arts = found.GetArtifacts()
	default:
		return nil, invalid("restore: give a restore point, artifact IDs, or latest")
	}
	var out []*forlockv1.Artifact
	for _, a := range arts {
		if !e.readsNode(a.GetNodeId(), scope) {
			return nil, invalid("artifact %q not found in the catalog", a.GetId())
		}
		if len(r.GetOnly()) > 0 && !slices.Contains(r.GetOnly(), a.GetKind()) {
			continue
		}
		if a.GetState() != forlockv1.ArtifactState_ARTIFACT_STATE_AVAILABLE {
			return nil, invalid("artifact %s is %s", a.GetId(), a.GetState())
		}
		out = append(out, a)
	}
	if len(out) == 0 {
		return nil, invalid("nothing to restore: no artifact of the kinds asked for")
	}
	return out, nil
}

// taskKeys makes the data keys a task needs: fresh keys for a backup, the
// unwrapped keys of the artifacts for a restore. They are never stored.
func (e *Engine) taskKeys(ctx context.Context, spec *forlockv1.JobSpec) ([]*forlockv1.TaskKey, error) {
	switch k := spec.GetKind().(type) {
	case *forlockv1.JobSpec_Backup, *forlockv1.JobSpec_Upgrade:
		kinds := spec.GetBackup().GetOnly()
		if len(kinds) == 0 {
			kinds = allKinds
		}
		var out []*forlockv1.TaskKey
		for _, kind := range kinds {
			plain := make([]byte, 32)
			if _, err := rand.Read(plain); err != nil {
				return nil, err
			}
			wrapped, err := e.kek.Wrap(ctx, plain)
			if err != nil {
				return nil, fmt.Errorf("wrap a data key: %w", err)
			}
			out = append(out, &forlockv1.TaskKey{Name: KindName(kind), KeyId: e.kek.KeyID(), WrappedKey: wrapped, PlainKey: plain})
		}
		return out, nil
	case *forlockv1.JobSpec_Restore:
		out, err := e.artifactKeys(ctx, k.Restore.GetArtifacts())
		if err != nil {
			return nil, err
		}
		arch, err := e.archiveTaskKeys(ctx, k.Restore.GetWal())
		return append(out, arch...), err
	case *forlockv1.JobSpec_VerifyBackup:
		return e.artifactKeys(ctx, k.VerifyBackup.GetArtifacts())
	}
	return nil, nil
}

// artifactKeys unwraps the data key of each artifact, named by its ID.
func (e *Engine) artifactKeys(ctx context.Context, arts []*forlockv1.Artifact) ([]*forlockv1.TaskKey, error) {
	var out []*forlockv1.TaskKey
	for _, a := range arts {
		plain, err := e.kek.Unwrap(ctx, a.GetKeyId(), a.GetWrappedKey())
		if err != nil {
			return nil, fmt.Errorf("unwrap the data key of artifact %s: %w", a.GetId(), err)
		}
		out = append(out, &forlockv1.TaskKey{Name: a.GetId(), KeyId: a.GetKeyId(), WrappedKey: a.GetWrappedKey(), PlainKey: plain})
	}
	return out, nil
}

// catalog checks the artifacts a backup task reports and queues its restore
// point for the commit that records the task's success. Callers hold e.mu.
func (e *Engine) catalog(j *job, t *forlockv1.Task, arts []*forlockv1.Artifact, keysErr error) error {
	if keysErr != nil {
		return keysErr
	}
	want := j.pb.GetSpec().GetBackup().GetOnly()
	if len(want) == 0 {
		want = allKinds
	}
	if len(arts) != len(want) {
		return fmt.Errorf("the agent reported %d artifacts, %d were asked for", len(arts), len(want))
	}
	now := time.Now()
	rp := &forlockv1.RestorePoint{Id: newJobID(now), NodeId: t.GetNodeId(), NodeName: t.GetNodeName(), CreatedAt: timestamppb.New(now), JobId: j.pb.GetId()}
	for i, a := range arts {
		if !slices.Contains(want, a.GetKind()) || len(a.GetSha256()) != 64 || a.GetLocation() == "" || a.GetSizeBytes() == 0 {
			return fmt.Errorf("artifact %d is incomplete or of a kind not asked for", i)
		}
		// A drill's report is the one result whose keys TaskUpdate does not
		// check: a backup's artifacts must carry the key that was checked.
		if a.GetDrill() != nil || len(a.GetWrappedKey()) == 0 || a.GetKeyId() == "" {
			return fmt.Errorf("artifact %d carries no data key, or a drill result: not a backup's artifact", i)
		}
		if a.GetKind() == forlockv1.ArtifactKind_ARTIFACT_KIND_POSTGRES && !samePostgresFormat(a.GetPostgresFormat(), j.pb.GetSpec().GetBackup().GetPostgresFormat()) {
			return fmt.Errorf("the agent made a %s PostgreSQL backup, %s was asked for: upgrade the agent", a.GetPostgresFormat(), j.pb.GetSpec().GetBackup().GetPostgresFormat())
		}
		c := proto.CloneOf(a)
		if !validWalPosition(c) {
			c.WalStartLsn, c.WalEndLsn, c.Timeline, c.BackupEndTime = "", "", 0, nil // not a PITR base
		}
		c.Id = fmt.Sprintf("%s-%s", rp.GetId(), KindName(a.GetKind()))
		c.NodeId, c.NodeName, c.RestorePointId, c.JobId = t.GetNodeId(), t.GetNodeName(), rp.GetId(), j.pb.GetId()
		c.State = forlockv1.ArtifactState_ARTIFACT_STATE_AVAILABLE
		if c.GetCreatedAt() == nil {
			c.CreatedAt = timestamppb.New(now)
		}
		rp.Artifacts = append(rp.Artifacts, c)
	}
	t.Artifacts = rp.GetArtifacts()
	e.rps = append(e.rps, rp)
	return nil
}
