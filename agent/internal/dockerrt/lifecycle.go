package dockerrt

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
)

// State is the engine's state of one container.
type State struct {
	// Name is the container name.
	Name string
	// Status is the engine state: running, exited, restarting, ...
	Status string
	// Health is the healthcheck status (starting, healthy, unhealthy), or
	// empty when the container has no healthcheck.
	Health string
}

// Running reports whether the container is up.
func (s State) Running() bool { return s.Status == string(container.StateRunning) }

// State returns the state of the container serving service.
func (r *Runtime) State(ctx context.Context, service string) (State, error) {
	id, cname, err := r.find(ctx, service)
	if err != nil {
		return State{}, err
	}
	ins, err := r.cli.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil {
		return State{}, fmt.Errorf("inspect container %s: %w", cname, err)
	}
	st := State{Name: cname}
	if s := ins.Container.State; s != nil {
		st.Status = string(s.Status)
		if s.Health != nil && s.Health.Status != container.NoHealthcheck {
			st.Health = string(s.Health.Status)
		}
	}
	return st, nil
}

// Stop stops the container serving service, waiting up to timeout for it
// to exit before the engine kills it. Stopping a stopped container is not
// an error. A container stopped this way stays down under an
// unless-stopped restart policy until Start.
func (r *Runtime) Stop(ctx context.Context, service string, timeout time.Duration) error {
	id, cname, err := r.find(ctx, service)
	if err != nil {
		return err
	}
	secs := max(int(timeout/time.Second), 1)
	if _, err := r.cli.ContainerStop(ctx, id, client.ContainerStopOptions{Timeout: &secs}); err != nil {
		return fmt.Errorf("stop container %s: %w", cname, err)
	}
	return nil
}

// Start starts the container serving service. Starting a running
// container is not an error.
func (r *Runtime) Start(ctx context.Context, service string) error {
	id, cname, err := r.find(ctx, service)
	if err != nil {
		return err
	}
	if _, err := r.cli.ContainerStart(ctx, id, client.ContainerStartOptions{}); err != nil {
		return fmt.Errorf("start container %s: %w", cname, err)
	}
	return nil
}

// CopyTo extracts the tar archive tarball into the directory dir of the
// container serving service, which may be stopped. Ownership and modes
// are taken from the archive's headers.
func (r *Runtime) CopyTo(ctx context.Context, service, dir string, tarball io.Reader) error {
	id, cname, err := r.find(ctx, service)
	if err != nil {
		return err
	}
	if _, err := r.cli.CopyToContainer(ctx, id, client.CopyToContainerOptions{DestinationPath: dir, Content: tarball}); err != nil {
		return fmt.Errorf("copy into %s of container %s: %w", dir, cname, err)
	}
	return nil
}
