package dockerrt

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
)

// ScratchLabel marks the scratch containers of restore drills, so that one
// left behind by a crash is found and removed (RemoveScratch). Its value is
// the name of the live container whose image it runs: another node's
// drills on the same Engine are not this node's leftovers.
const ScratchLabel = "com.forlock.fleet.drill"

// ScratchConfig says how to start a scratch container.
type ScratchConfig struct {
	// Service whose image the scratch container runs (the image ID of its
	// container now, not its tag). Nothing else is taken from it: no
	// volume, no environment, no network.
	Service string
	// User, e.g. "postgres"; empty: the image's.
	User string
	// Cmd replaces the image's entrypoint (Cmd[0]) and command.
	Cmd []string
	// NanoCPUs and MemoryBytes limit the container (0: no limit).
	NanoCPUs    int64
	MemoryBytes int64
}

// Scratch is a running scratch container.
type Scratch struct {
	r        *Runtime
	ID, Name string
}

// StartScratch creates and starts a scratch container beside the node: the
// image of cfg.Service's container, NetworkMode "none", the CPU and memory
// limits, labelled ScratchLabel. The service's container is only inspected.
// The caller removes it (Remove) whatever happens.
func (r *Runtime) StartScratch(ctx context.Context, cfg ScratchConfig) (*Scratch, error) {
	if len(cfg.Cmd) == 0 {
		return nil, errors.New("scratch container: empty command")
	}
	created, name, _, err := r.createBeside(ctx, cfg.Service, "drill",
		func(cname string) *container.Config {
			return &container.Config{User: cfg.User, Entrypoint: cfg.Cmd[:1], Cmd: cfg.Cmd[1:], Labels: map[string]string{ScratchLabel: cname}}
		},
		func(string) *container.HostConfig {
			return &container.HostConfig{NetworkMode: "none", Resources: container.Resources{NanoCPUs: cfg.NanoCPUs, Memory: cfg.MemoryBytes}}
		})
	if err != nil {
		return nil, err
	}
	s := &Scratch{r: r, ID: created.ID, Name: name}
	if _, err := r.cli.ContainerStart(ctx, created.ID, client.ContainerStartOptions{}); err != nil {
		return nil, errors.Join(fmt.Errorf("scratch container %s: start: %w", name, err), s.Remove(ctx))
	}
	return s, nil
}

// Exec runs cmd in the scratch container, as Runtime.Exec does.
func (s *Scratch) Exec(ctx context.Context, user string, cmd []string, stdin io.Reader, stdout io.Writer) (ExecResult, error) {
	return s.r.execIn(ctx, s.ID, s.Name, user, cmd, stdin, stdout)
}

// Running reports whether the scratch container still runs.
func (s *Scratch) Running(ctx context.Context) (bool, error) {
	ins, err := s.r.cli.ContainerInspect(ctx, s.ID, client.ContainerInspectOptions{})
	if err != nil {
		return false, err
	}
	return ins.Container.State != nil && ins.Container.State.Running, nil
}

// Remove removes the scratch container and its anonymous volumes, with its
// own deadline (ctx may be over).
func (s *Scratch) Remove(ctx context.Context) error {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), helperRemoveTimeout)
	defer cancel()
	if _, err := s.r.cli.ContainerRemove(rctx, s.ID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true}); err != nil && !IsNotFound(err) {
		return fmt.Errorf("remove scratch container %s (docker rm -fv %s): %w", s.Name, s.Name, err)
	}
	return nil
}

// RemoveScratch removes every scratch container of a drill left beside the
// containers of services (labelled ScratchLabel with their names), e.g. by
// an agent that died in a drill, and returns their names.
func (r *Runtime) RemoveScratch(ctx context.Context, services ...string) ([]string, error) {
	var items []container.Summary
	for _, svc := range services {
		_, cname, err := r.find(ctx, svc)
		if err != nil {
			continue // no such container: nothing beside it
		}
		list, err := r.cli.ContainerList(ctx, client.ContainerListOptions{All: true,
			Filters: make(client.Filters).Add("label", ScratchLabel+"="+cname)})
		if err != nil {
			return nil, fmt.Errorf("list scratch containers: %w", err)
		}
		items = append(items, list.Items...)
	}
	var names []string
	var errs []error
	for _, c := range items {
		s := &Scratch{r: r, ID: c.ID, Name: name(c)}
		if err := s.Remove(ctx); err != nil {
			errs = append(errs, err)
			continue
		}
		names = append(names, s.Name)
	}
	return names, errors.Join(errs...)
}
