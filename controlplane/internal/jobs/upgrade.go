package jobs

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/forlock/fleet/controlplane/internal/store"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// Services are the services an upgrade may name, in the order they are
// upgraded.
var Services = []string{"postgres", "redis", "api", "nginx"}

var (
	imageTag  = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)
	digest    = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)
	releaseID = regexp.MustCompile(`^[0-9a-f]{12,64}$`)
)

// maxHealthTimeout bounds how long an upgrade waits for one service.
const maxHealthTimeout = 30 * time.Minute

func validUpgrade(u *forlockv1.UpgradeSpec) error {
	if u.GetTo() == "" {
		return invalid("upgrade: give the new image tag or digest (--to TAG or --to sha256:...)")
	}
	if !imageTag.MatchString(u.GetTo()) && !digest.MatchString(u.GetTo()) {
		return invalid("upgrade: %q is neither an image tag (letters, digits, '_', '.', '-'; at most 128) nor a digest (sha256:<64 hex>)", u.GetTo())
	}
	for _, s := range u.GetServices() {
		if !slices.Contains(Services, s) {
			return invalid("upgrade: unknown service %q: use postgres, redis, api or nginx", s)
		}
	}
	if err := validHealthTimeout(u.GetHealthTimeout().AsDuration()); err != nil {
		return err
	}
	return validDestination(u.GetBackupDestination())
}

func validRollback(r *forlockv1.RollbackSpec) error {
	if id := r.GetReleaseId(); id != "" && !releaseID.MatchString(id) {
		return invalid("rollback: release %q is not a release ID (hex, as 'forlockctl nodes get' shows)", id)
	}
	return validHealthTimeout(r.GetHealthTimeout().AsDuration())
}

func validHealthTimeout(d time.Duration) error {
	if d < 0 || d > maxHealthTimeout {
		return invalid("health timeout %s: give 0 (default 2m) up to 30m", d)
	}
	return nil
}

// checkKeys checks that every artifact's wrapped data key is one this
// control plane made: it unwraps with our key-encryption key. It runs
// without e.mu (Vault Transit is a network call).
func (e *Engine) checkKeys(arts []*forlockv1.Artifact) error {
	if e.kek == nil {
		return errors.New("this control plane has no key-encryption key")
	}
	ctx, cancel := context.WithTimeout(context.Background(), materialTimeout)
	defer cancel()
	for _, a := range arts {
		if _, err := e.kek.Unwrap(ctx, a.GetKeyId(), a.GetWrappedKey()); err != nil {
			return fmt.Errorf("artifact %s: its data key is not one this control plane made: %w", KindName(a.GetKind()), err)
		}
	}
	return nil
}

// recordUpgrade records what an upgrade or rollback task reported: the
// release the node runs now (also after a rollback: the one before), and
// the pre-upgrade backup in the catalog. Callers hold e.mu.
func (e *Engine) recordUpgrade(j *job, t *forlockv1.Task, u *forlockv1.TaskUpdate, keysErr error) {
	up := proto.CloneOf(u.GetUpgrade())
	if arts := u.GetArtifacts(); len(arts) > 0 {
		if err := e.catalog(j, t, arts, keysErr); err != nil {
			e.log.Warn("pre-upgrade backup not cataloged", "task_id", t.GetId(), "error", err.Error())
		} else {
			up.BackupRestorePointId = e.rps[len(e.rps)-1].GetId()
		}
	}
	t.Upgrade = up
	// The release before goes first: before a node's first upgrade it is
	// not recorded yet, and it is what a rollback returns to. The store
	// drops a release equal to the newest recorded one.
	before, after := proto.CloneOf(up.GetBefore()), proto.CloneOf(up.GetAfter())
	if after != nil && !up.GetRolledBack() {
		after.JobId = j.pb.GetId()
	}
	for _, rel := range []*forlockv1.Release{before, after} {
		if len(rel.GetServices()) > 0 {
			e.pendingRels = append(e.pendingRels, store.NodeRelease{NodeID: t.GetNodeId(), Release: rel})
		}
	}
}
