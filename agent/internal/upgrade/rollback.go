package upgrade

import (
	"context"
	"errors"
	"fmt"

	"github.com/forlock/fleet/agent/internal/dockerrt"
)

// Rollback returns the node to the release to: every service whose
// container does not run the recorded image ID is created again from its
// recorded configuration and image, in dependency order, with the same
// health gate and undo as Upgrade. An image no longer on the node is
// pulled by its recorded digest. The result and error are as Upgrade's.
func (u *Upgrader) Rollback(ctx context.Context, to Release, o Options) (Result, error) {
	if !u.busy.TryLock() {
		return Result{}, ErrBusy
	}
	defer u.busy.Unlock()
	o.defaults()
	if len(to.Services) == 0 {
		return Result{}, errors.New("rollback: the release records no services")
	}
	var res Result
	var err error
	if res.Recovered, err = u.recover(ctx, o); err != nil {
		return res, err
	}
	if res.Before, err = u.Current(ctx); err != nil {
		return res, err
	}
	var plan []step
	for _, svc := range Services {
		want, ok := to.Service(svc)
		if !ok {
			continue
		}
		if want.Config == nil || want.HostConfig == nil || want.ImageID == "" {
			return res, fmt.Errorf("rollback %s: the release lacks the container's configuration or image ID", svc)
		}
		cur, _ := res.Before.Service(svc)
		if cur.ImageID == want.ImageID {
			u.emit(o, svc, "skip", "%s already runs %s", cur.Container, want.ImageID)
			res.Unchanged = append(res.Unchanged, svc)
			continue
		}
		ref, err := u.localImage(ctx, want, o)
		if err != nil {
			return res, fmt.Errorf("rollback %s: %w", svc, err)
		}
		if cur.PostgresMajor != "" && want.PostgresMajor != "" && cur.PostgresMajor != want.PostgresMajor {
			return res, fmt.Errorf("%w: %s runs PostgreSQL %s and the release has PostgreSQL %s; its data directory cannot go back by swapping images: restore a backup taken before the major upgrade",
				ErrPostgresMajor, cur.Container, cur.PostgresMajor, want.PostgresMajor)
		}
		// The recorded container may have had another name; the service
		// keeps today's.
		want.Container = cur.Container
		plan = append(plan, step{service: svc, src: want, ref: ref, imageID: want.ImageID})
	}
	return u.run(ctx, plan, res, o)
}

// localImage makes sure the release's image of want is on the node and
// returns the reference to create the container from: the recorded
// reference if it still names that image, else the repo digest, else the
// image ID.
func (u *Upgrader) localImage(ctx context.Context, want ServiceRelease, o Options) (string, error) {
	d := u.cfg.Docker
	if img, err := d.InspectImage(ctx, want.Image); err == nil && img.ID == want.ImageID {
		return want.Image, nil
	}
	_, err := d.InspectImage(ctx, want.ImageID)
	switch {
	case err == nil:
	case !dockerrt.IsNotFound(err):
		return "", err
	case want.RepoDigest == "":
		return "", fmt.Errorf("image %s (%s) is no longer on the node and came from no registry: rebuild or load it", want.ImageID, want.Image)
	default:
		u.emit(o, want.Service, "pull", "pulling %s", want.RepoDigest)
		if err := d.PullImage(ctx, want.RepoDigest, o.Auth); err != nil {
			return "", pullError(want.RepoDigest, o.Auth, err)
		}
	}
	if want.RepoDigest != "" {
		img, err := d.InspectImage(ctx, want.RepoDigest)
		if err == nil && img.ID == want.ImageID {
			return want.RepoDigest, nil
		}
	}
	return want.ImageID, nil
}
