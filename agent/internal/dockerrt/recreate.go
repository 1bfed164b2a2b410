package dockerrt

import (
	"context"
	"fmt"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
)

// The calls below act on one container by name or ID, for the upgrade
// engine, which replaces containers and so cannot go through the service
// lookup of State, Stop and Start.

// CreateSpec is everything a container is created from.
type CreateSpec struct {
	Config     *container.Config
	HostConfig *container.HostConfig
	// Networking holds at most one endpoint: engines before API 1.44
	// refuse more at creation (connect the others with ConnectNetwork).
	Networking *network.NetworkingConfig
}

// InspectContainer returns the engine's full view of the container
// nameOrID. A missing container gives an error for which IsNotFound is
// true.
func (r *Runtime) InspectContainer(ctx context.Context, nameOrID string) (container.InspectResponse, error) {
	res, err := r.cli.ContainerInspect(ctx, nameOrID, client.ContainerInspectOptions{})
	if err != nil {
		return container.InspectResponse{}, fmt.Errorf("inspect container %s: %w", nameOrID, err)
	}
	return res.Container, nil
}

// CreateContainer creates (does not start) the container name from spec
// and returns its ID.
func (r *Runtime) CreateContainer(ctx context.Context, name string, spec CreateSpec) (string, error) {
	res, err := r.cli.ContainerCreate(ctx, client.ContainerCreateOptions{
		Name: name, Config: spec.Config, HostConfig: spec.HostConfig, NetworkingConfig: spec.Networking,
	})
	if err != nil {
		return "", fmt.Errorf("create container %s: %w", name, err)
	}
	return res.ID, nil
}

// ConnectNetwork connects the container id to the network net with the
// endpoint settings ep (aliases, static addresses).
func (r *Runtime) ConnectNetwork(ctx context.Context, net, id string, ep *network.EndpointSettings) error {
	if _, err := r.cli.NetworkConnect(ctx, net, client.NetworkConnectOptions{Container: id, EndpointConfig: ep}); err != nil {
		return fmt.Errorf("connect container %s to network %s: %w", short(id), net, err)
	}
	return nil
}

// RenameContainer renames the container id.
func (r *Runtime) RenameContainer(ctx context.Context, id, newName string) error {
	if _, err := r.cli.ContainerRename(ctx, id, client.ContainerRenameOptions{NewName: newName}); err != nil {
		return fmt.Errorf("rename container %s to %s: %w", short(id), newName, err)
	}
	return nil
}

// StartContainer starts the container id; starting a running one is not
// an error.
func (r *Runtime) StartContainer(ctx context.Context, id string) error {
	if _, err := r.cli.ContainerStart(ctx, id, client.ContainerStartOptions{}); err != nil {
		return fmt.Errorf("start container %s: %w", short(id), err)
	}
	return nil
}

// StopContainer stops the container id, giving it timeout to exit before
// the engine kills it; stopping a stopped one is not an error.
func (r *Runtime) StopContainer(ctx context.Context, id string, timeout time.Duration) error {
	secs := max(int(timeout/time.Second), 1)
	if _, err := r.cli.ContainerStop(ctx, id, client.ContainerStopOptions{Timeout: &secs}); err != nil {
		return fmt.Errorf("stop container %s: %w", short(id), err)
	}
	return nil
}

// RemoveContainer removes the container id, killing it if it runs. Its
// volumes, named or anonymous, are always kept.
func (r *Runtime) RemoveContainer(ctx context.Context, id string) error {
	if _, err := r.cli.ContainerRemove(ctx, id, client.ContainerRemoveOptions{Force: true, RemoveVolumes: false}); err != nil {
		return fmt.Errorf("remove container %s: %w", short(id), err)
	}
	return nil
}

// short is a container ID as docker ps shows it; names pass unchanged.
func short(id string) string {
	if len(id) == 64 {
		return id[:12]
	}
	return id
}
