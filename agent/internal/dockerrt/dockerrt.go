// Package dockerrt is the agent's view of the local Docker Engine: it finds
// the containers of the host's Forlock stack and reads their state through
// the Engine API (github.com/moby/moby/client), never through the docker or
// compose command-line tools.
//
// A node's containers are found by name (default the operations guide's
// forlock-api, forlock-postgres, forlock-redis, forlock-nginx) or, when a
// compose project is configured, by the com.docker.compose.project label;
// either way an expected entry matches a container whose name or compose
// service (com.docker.compose.service) equals it. For each container it
// reports state, health, restart count, image reference and digest, start
// time, and one non-streaming stats sample (CPU and memory).
//
// The API version is negotiated with the engine on first use (the client
// speaks 1.40 to 1.56; Docker 20.10 offers 1.41), unless Config.APIVersion
// or DOCKER_API_VERSION fixes it.
package dockerrt

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
)

// Compose labels that tie a container to its project and service.
const (
	ProjectLabel = "com.docker.compose.project"
	ServiceLabel = "com.docker.compose.service"
)

// DefaultNames are the operations guide's container names.
var DefaultNames = []string{"forlock-api", "forlock-postgres", "forlock-redis", "forlock-nginx"}

// Config configures a Runtime.
type Config struct {
	// Host is the engine's address, e.g. unix:///var/run/docker.sock or
	// tcp://10.0.0.5:2376. Empty means DOCKER_HOST, else the platform's
	// default socket; DOCKER_TLS_VERIFY and DOCKER_CERT_PATH apply as for
	// the docker CLI.
	Host string
	// APIVersion fixes the API version, e.g. "1.41"; empty negotiates it
	// (or takes DOCKER_API_VERSION).
	APIVersion string
	// Names are the expected containers, by container name or compose
	// service name; empty means DefaultNames.
	Names []string
	// Project, if set, finds the containers by their compose project label
	// instead of by name.
	Project string
}

// Container is what the engine reports about one container.
type Container struct {
	// Expected is the configured entry the container matched.
	Expected string
	// Found is false when no container matched Expected; the other fields
	// are then empty.
	Found bool
	// ID is the container ID.
	ID string
	// Name is the container name, without the leading slash.
	Name string
	// Project and Service are the compose labels, if any.
	Project, Service string
	// State is the engine state: running, exited, restarting, paused, ...
	State string
	// ExitCode is the last exit code of a container that is not running.
	ExitCode int
	// Health is the healthcheck status (starting, healthy, unhealthy), or
	// empty when the container has no healthcheck.
	Health string
	// RestartCount counts the engine's restarts of the container.
	RestartCount int
	// Image is the image reference the container was created from.
	Image string
	// ImageID is the local image ID, sha256:...
	ImageID string
	// ImageDigest is the repository digest (repo@sha256:...) of the image
	// when it came from a registry, else the image ID.
	ImageDigest string
	// StartedAt is when the container last started; zero if never.
	StartedAt time.Time
	// Stats is the resource sample; nil when the container is not running
	// or the sample could not be read.
	Stats *Stats
	// StatsErr says why Stats is nil for a running container.
	StatsErr error
}

// Running reports whether the container is up (running, not paused or
// restarting).
func (c Container) Running() bool { return c.Found && c.State == string(container.StateRunning) }

// engine is the part of the Engine API the runtime uses.
type engine interface {
	Ping(ctx context.Context, options client.PingOptions) (client.PingResult, error)
	ContainerList(ctx context.Context, options client.ContainerListOptions) (client.ContainerListResult, error)
	ContainerInspect(ctx context.Context, id string, options client.ContainerInspectOptions) (client.ContainerInspectResult, error)
	ContainerStats(ctx context.Context, id string, options client.ContainerStatsOptions) (client.ContainerStatsResult, error)
	ImageInspect(ctx context.Context, id string, opts ...client.ImageInspectOption) (client.ImageInspectResult, error)
	Info(ctx context.Context, options client.InfoOptions) (client.SystemInfoResult, error)
}

// Runtime reads the node's containers from the engine. It is safe for
// concurrent use.
type Runtime struct {
	cfg    Config
	cli    *client.Client
	engine engine
}

// New returns a Runtime for cfg. It does not contact the engine.
func New(cfg Config) (*Runtime, error) {
	if len(cfg.Names) == 0 {
		cfg.Names = DefaultNames
	}
	for _, n := range cfg.Names {
		if n == "" || strings.ContainsAny(n, " /\t\n") {
			return nil, fmt.Errorf("container name %q: want a container or compose service name", n)
		}
	}
	opts := []client.Opt{client.FromEnv}
	if cfg.Host != "" {
		opts = append(opts, client.WithHost(cfg.Host))
	}
	if cfg.APIVersion != "" {
		opts = append(opts, client.WithAPIVersion(cfg.APIVersion))
	}
	cli, err := client.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("docker engine client: %w", err)
	}
	return &Runtime{cfg: cfg, cli: cli, engine: cli}, nil
}

// Close releases the client's idle connections.
func (r *Runtime) Close() error { return r.cli.Close() }

// Host is the engine address the runtime talks to.
func (r *Runtime) Host() string { return r.cli.DaemonHost() }

// Describe says how containers are found, for messages: `names
// forlock-api, forlock-redis` or `compose project "forlock"`.
func (r *Runtime) Describe() string {
	if r.cfg.Project != "" {
		return fmt.Sprintf("compose project %q", r.cfg.Project)
	}
	return "names " + strings.Join(r.cfg.Names, ", ")
}

// Ping checks that the engine answers, and negotiates the API version if
// it was not fixed. It returns the API version in use.
func (r *Runtime) Ping(ctx context.Context) (string, error) {
	if _, err := r.engine.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
		return "", fmt.Errorf("docker engine at %s: %w", r.Host(), err)
	}
	return r.cli.ClientVersion(), nil
}

// RootDir returns the engine's data root (DockerRootDir, e.g.
// /var/lib/docker), where images, containers and volumes take their space.
func (r *Runtime) RootDir(ctx context.Context) (string, error) {
	res, err := r.engine.Info(ctx, client.InfoOptions{})
	if err != nil {
		return "", fmt.Errorf("docker engine at %s: %w", r.Host(), err)
	}
	if res.Info.DockerRootDir == "" {
		return "", fmt.Errorf("docker engine at %s reports no data root", r.Host())
	}
	return res.Info.DockerRootDir, nil
}

// Containers returns one Container per expected entry, in configured
// order, with Found false for those the engine does not have, followed by
// the project's other containers when a project is configured. Each found
// container is inspected and, if running, sampled once (about a second:
// the engine takes two CPU readings).
func (r *Runtime) Containers(ctx context.Context) ([]Container, error) {
	if _, err := r.Ping(ctx); err != nil {
		return nil, err
	}
	filters := make(client.Filters)
	if r.cfg.Project != "" {
		filters.Add("label", ProjectLabel+"="+r.cfg.Project)
	} else {
		for _, n := range r.cfg.Names {
			filters.Add("name", "^/"+regexp.QuoteMeta(n)+"$")
		}
	}
	list, err := r.engine.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: filters})
	if err != nil {
		return nil, fmt.Errorf("list containers of %s: %w", r.Describe(), err)
	}
	out, err := match(r.cfg.Names, r.cfg.Project != "", list.Items)
	if err != nil {
		return nil, err
	}
	var wg sync.WaitGroup
	errs := make([]error, len(out))
	for i := range out {
		if !out[i].Found {
			continue
		}
		wg.Go(func() { errs[i] = r.fill(ctx, &out[i]) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

// match pairs the expected entries with the listed containers. In project
// mode, containers of the project that match no entry are appended.
func match(names []string, project bool, items []container.Summary) ([]Container, error) {
	out := make([]Container, 0, len(names))
	used := make([]bool, len(items))
	for _, want := range names {
		c := Container{Expected: want}
		for i, s := range items {
			if used[i] || (name(s) != want && s.Labels[ServiceLabel] != want) {
				continue
			}
			if c.Found {
				return nil, fmt.Errorf("expected container %q matches both %s and %s: configure container names that tell them apart", want, c.Name, name(s))
			}
			c.Found, c.ID, c.Name = true, s.ID, name(s)
			used[i] = true
		}
		out = append(out, c)
	}
	if project {
		for i, s := range items {
			if !used[i] {
				out = append(out, Container{Expected: name(s), Found: true, ID: s.ID, Name: name(s)})
			}
		}
	}
	return out, nil
}

// fill inspects a found container, then reads its image and a stats
// sample.
func (r *Runtime) fill(ctx context.Context, c *Container) error {
	ins, err := r.engine.ContainerInspect(ctx, c.ID, client.ContainerInspectOptions{})
	if err != nil {
		return fmt.Errorf("inspect container %s: %w", c.Name, err)
	}
	ci := ins.Container
	c.RestartCount = ci.RestartCount
	c.ImageID, c.ImageDigest = ci.Image, ci.Image
	if ci.Config != nil {
		c.Image = ci.Config.Image
		c.Project, c.Service = ci.Config.Labels[ProjectLabel], ci.Config.Labels[ServiceLabel]
	}
	if st := ci.State; st != nil {
		c.State, c.ExitCode = string(st.Status), st.ExitCode
		if st.Health != nil && st.Health.Status != container.NoHealthcheck {
			c.Health = string(st.Health.Status)
		}
		if t, err := time.Parse(time.RFC3339Nano, st.StartedAt); err == nil && t.Year() > 1 {
			c.StartedAt = t
		}
	}
	if img, err := r.engine.ImageInspect(ctx, ci.Image); err == nil {
		c.ImageDigest = repoDigest(c.Image, img.RepoDigests, ci.Image)
	}
	if c.State != string(container.StateRunning) {
		return nil
	}
	var limit int64
	if ci.HostConfig != nil {
		limit = ci.HostConfig.Memory
	}
	c.Stats, c.StatsErr = r.sample(ctx, c.ID, limit)
	return nil
}

// repoDigest picks the repository digest of ref's repository, else the
// first one, else the image ID.
func repoDigest(ref string, digests []string, imageID string) string {
	repo := ref
	if i := strings.LastIndexAny(ref, ":@"); i > strings.LastIndex(ref, "/") {
		repo = ref[:i]
	}
	if i := slices.IndexFunc(digests, func(d string) bool { return strings.HasPrefix(d, repo+"@") }); i >= 0 {
		return digests[i]
	}
	if len(digests) > 0 {
		return digests[0]
	}
	return imageID
}

func name(s container.Summary) string {
	if len(s.Names) == 0 {
		return s.ID
	}
	return strings.TrimPrefix(s.Names[0], "/")
}
