package upgrade

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"

	"github.com/forlock/fleet/agent/internal/dockerrt"
)

// step replaces one service's container.
type step struct {
	service string
	// src is the configuration the new container is created from (the
	// current container's for an upgrade, the recorded one for a
	// rollback).
	src ServiceRelease
	// ref and imageID are the image the new container runs.
	ref, imageID string

	// Progress, for undoing: the container replaced and whether it was
	// running, whether it was renamed, and the new container's ID.
	oldID      string
	wasRunning bool
	renamed    bool
	newID      string
}

// run applies plan in order and commits, or undoes every step taken when
// one fails.
func (u *Upgrader) run(ctx context.Context, plan []step, res Result, o Options) (Result, error) {
	for i := range plan {
		if err := u.replace(ctx, &plan[i], o); err != nil {
			res.RolledBack = true
			res.Reason = fmt.Sprintf("%s: %v", plan[i].service, err)
			u.cfg.Log.Warn("replacement failed; restoring the previous containers", "service", plan[i].service, "error", err.Error())
			if rerr := u.undo(ctx, plan[:i+1], o); rerr != nil {
				return res, fmt.Errorf("%w after %s: %w", ErrRestore, res.Reason, rerr)
			}
			res.After, err = u.Current(context.WithoutCancel(ctx))
			return res, err
		}
	}
	for _, st := range plan {
		u.emit(o, st.service, "commit", "removing the previous container %s", st.src.Container+PrevSuffix)
		if err := u.cfg.Docker.RemoveContainer(context.WithoutCancel(ctx), st.oldID); err != nil {
			res.Warnings = append(res.Warnings, fmt.Sprintf("%s: %v: remove it by hand (docker rm %s%s) before the next upgrade, which would otherwise put it back", st.service, err, st.src.Container, PrevSuffix))
		}
		res.Changed = append(res.Changed, st.service)
	}
	var err error
	res.After, err = u.Current(context.WithoutCancel(ctx))
	return res, err
}

// replace stops the service's container, moves it aside and starts a new
// one from st, then waits for it to be healthy.
func (u *Upgrader) replace(ctx context.Context, st *step, o Options) error {
	d := u.cfg.Docker
	name := u.name(st.service)
	old, err := d.InspectContainer(ctx, name)
	if err != nil {
		return err
	}
	st.oldID = old.ID
	st.wasRunning = old.State != nil && old.State.Running
	var ports network.PortMap
	if old.NetworkSettings != nil {
		ports = old.NetworkSettings.Ports
	}
	c, err := createSpec(st.src, st.ref, ports)
	if err != nil {
		return err
	}
	u.emit(o, st.service, "stop", "stopping %s (%s)", name, st.src.Image)
	if err := d.StopContainer(ctx, old.ID, u.cfg.StopTimeout); err != nil {
		return err
	}
	if err := d.RenameContainer(ctx, old.ID, name+PrevSuffix); err != nil {
		return err
	}
	st.renamed = true
	u.emit(o, st.service, "create", "creating %s from %s", name, st.ref)
	if st.newID, err = d.CreateContainer(ctx, name, c.spec); err != nil {
		return err
	}
	for _, net := range slices.Sorted(maps.Keys(c.connect)) {
		if err := d.ConnectNetwork(ctx, net, st.newID, c.connect[net]); err != nil {
			return err
		}
	}
	u.emit(o, st.service, "start", "starting %s", name)
	if err := d.StartContainer(ctx, st.newID); err != nil {
		return err
	}
	return u.waitHealthy(ctx, st.service, st.newID, o)
}

// undo puts back the previous containers of the steps taken, newest
// first, then waits for them to be healthy in dependency order. It runs
// even when ctx has ended.
func (u *Upgrader) undo(ctx context.Context, taken []step, o Options) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), restoreTimeout)
	defer cancel()
	d := u.cfg.Docker
	var errs []error
	for i := len(taken) - 1; i >= 0; i-- {
		st := taken[i]
		name := u.name(st.service)
		u.emit(o, st.service, "restore", "putting back the previous %s (%s)", name, st.src.Image)
		if st.newID != "" {
			if err := d.RemoveContainer(ctx, st.newID); err != nil {
				errs = append(errs, err)
				continue
			}
		}
		if st.renamed {
			if err := d.RenameContainer(ctx, st.oldID, name); err != nil {
				errs = append(errs, err)
				continue
			}
		}
		// A container that was stopped before stays stopped.
		if st.oldID != "" && st.wasRunning {
			if err := d.StartContainer(ctx, st.oldID); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	for _, st := range taken {
		if st.oldID == "" || !st.wasRunning {
			continue
		}
		if err := u.waitHealthy(ctx, st.service, st.oldID, o); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// recover puts back the previous containers an interrupted run left
// behind, and returns their services.
func (u *Upgrader) recover(ctx context.Context, o Options) ([]string, error) {
	d := u.cfg.Docker
	var found []step
	for _, svc := range Services {
		name := u.name(svc)
		prev, err := d.InspectContainer(ctx, name+PrevSuffix)
		if dockerrt.IsNotFound(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		// The previous container is started again whatever its state:
		// an interrupted run stopped it.
		st := step{service: svc, oldID: prev.ID, renamed: true, wasRunning: true}
		st.src.Image = prev.Config.Image
		cur, err := d.InspectContainer(ctx, name)
		switch {
		case err == nil:
			st.newID = cur.ID
		case !dockerrt.IsNotFound(err):
			return nil, err
		}
		u.emit(o, svc, "recover", "found %s%s from an interrupted upgrade or rollback", name, PrevSuffix)
		found = append(found, st)
	}
	if len(found) == 0 {
		return nil, nil
	}
	if err := u.undo(ctx, found, o); err != nil {
		return nil, fmt.Errorf("%w: recovering from an interrupted upgrade: %w", ErrRestore, err)
	}
	var svcs []string
	for _, st := range found {
		svcs = append(svcs, st.service)
	}
	return svcs, nil
}

// waitHealthy waits until the container id is healthy (its healthcheck
// passes, or it runs if it has none) and then o.Health passes, for at
// most o.HealthTimeout. An unhealthy healthcheck, or an exit with no
// restart policy, fails at once.
func (u *Upgrader) waitHealthy(parent context.Context, service, id string, o Options) error {
	ctx, cancel := context.WithTimeout(parent, o.HealthTimeout)
	defer cancel()
	u.emit(o, service, "health", "waiting up to %s for %s to be healthy", o.HealthTimeout, service)
	start := time.Now()
	tick := time.NewTicker(u.cfg.PollInterval)
	defer tick.Stop()
	last := "not checked yet"
	for {
		ok, why, fatal := u.containerHealth(ctx, id)
		if ok && o.Health != nil {
			if err := o.Health(ctx, service); err != nil {
				ok, why = false, "health check: "+err.Error()
			}
		}
		if err := parent.Err(); err != nil {
			return fmt.Errorf("waiting for health: %w", err)
		}
		if ctx.Err() != nil {
			// The answer was cut short by the deadline: the reason is the
			// last full one.
			return fmt.Errorf("not healthy within %s: %s", o.HealthTimeout, last)
		}
		if fatal {
			return errors.New(why)
		}
		if ok {
			u.emit(o, service, "healthy", "%s healthy after %s", service, time.Since(start).Round(10*time.Millisecond))
			return nil
		}
		last = why
		select {
		case <-ctx.Done():
			if err := parent.Err(); err != nil {
				return fmt.Errorf("waiting for health: %w", err)
			}
			return fmt.Errorf("not healthy within %s: %s", o.HealthTimeout, last)
		case <-tick.C:
		}
	}
}

// containerHealth reads the container's state: ok when healthy, why when
// not, fatal when waiting cannot help.
func (u *Upgrader) containerHealth(ctx context.Context, id string) (ok bool, why string, fatal bool) {
	c, err := u.cfg.Docker.InspectContainer(ctx, id)
	if err != nil {
		return false, err.Error(), dockerrt.IsNotFound(err)
	}
	st := c.State
	if st == nil {
		return false, "no state reported", false
	}
	restarts := c.HostConfig != nil && c.HostConfig.RestartPolicy.Name != "" && c.HostConfig.RestartPolicy.Name != container.RestartPolicyDisabled
	switch st.Status {
	case container.StateRunning:
	case container.StateExited, container.StateDead:
		why = fmt.Sprintf("container exited with code %d", st.ExitCode)
		return false, why, !restarts
	default:
		return false, "container is " + string(st.Status), false
	}
	if st.Health == nil || st.Health.Status == container.NoHealthcheck || st.Health.Status == "" {
		return true, "", false
	}
	switch st.Health.Status {
	case container.Healthy:
		return true, "", false
	case container.Unhealthy:
		return false, "healthcheck unhealthy: " + lastProbe(st.Health), true
	default:
		return false, "healthcheck " + string(st.Health.Status) + lastProbe(st.Health), false
	}
}

// lastProbe is the end of the last healthcheck probe's output.
func lastProbe(h *container.Health) string {
	if len(h.Log) == 0 || h.Log[len(h.Log)-1] == nil {
		return ""
	}
	p := h.Log[len(h.Log)-1]
	out := strings.TrimSpace(p.Output)
	if len(out) > 300 {
		out = out[len(out)-300:]
	}
	return fmt.Sprintf(" (last probe exit %d: %s)", p.ExitCode, out)
}
