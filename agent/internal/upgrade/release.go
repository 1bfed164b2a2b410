package upgrade

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/image"
	"github.com/moby/moby/api/types/network"
)

// Release is what a node runs: one entry per service, in dependency order.
type Release struct {
	// RecordedAt is when the release was read from the engine.
	RecordedAt time.Time `json:"recorded_at"`
	// Services are the node's services in dependency order.
	Services []ServiceRelease `json:"services"`
}

// Service returns the entry of service, if the release has one.
func (r Release) Service(service string) (ServiceRelease, bool) {
	i := slices.IndexFunc(r.Services, func(s ServiceRelease) bool { return s.Service == service })
	if i < 0 {
		return ServiceRelease{}, false
	}
	return r.Services[i], true
}

// Images maps each service to its image ID, for messages and tests.
func (r Release) Images() map[string]string {
	m := make(map[string]string, len(r.Services))
	for _, s := range r.Services {
		m[s.Service] = s.ImageID
	}
	return m
}

// ServiceRelease is one service's container and image.
type ServiceRelease struct {
	// Service is postgres, redis, api or nginx.
	Service string `json:"service"`
	// Container is the container's name; ContainerID its ID when recorded.
	Container   string `json:"container"`
	ContainerID string `json:"container_id"`
	// Image is the reference the container was created from, e.g.
	// registry.example.com/forlock/api:v2.
	Image string `json:"image"`
	// ImageID is the local image ID (sha256:...), which names the image's
	// exact content.
	ImageID string `json:"image_id"`
	// RepoDigest is repo@sha256:... when the image came from a registry
	// (what Rollback pulls if the image is gone); empty for local builds.
	RepoDigest string `json:"repo_digest,omitempty"`
	// PostgresMajor is the PostgreSQL major version the image declares,
	// if any.
	PostgresMajor string `json:"postgres_major,omitempty"`
	// Config, HostConfig and Networking are the container's create
	// configuration as the engine reports it (Config includes the values
	// inherited from the image). Networking holds every network the
	// container is on, with its aliases and static addresses.
	Config     *container.Config         `json:"config"`
	HostConfig *container.HostConfig     `json:"host_config"`
	Networking *network.NetworkingConfig `json:"networking"`
	Mounts     []container.MountPoint    `json:"mounts,omitempty"`
	// ImageDefaults are the values Config inherited from the image.
	ImageDefaults *ImageDefaults `json:"image_defaults"`
}

// ImageDefaults are the values a container inherits from its image, kept
// so that a re-creation from another image can drop them.
type ImageDefaults struct {
	Env          []string                `json:"env,omitempty"`
	Labels       map[string]string       `json:"labels,omitempty"`
	Cmd          []string                `json:"cmd,omitempty"`
	Entrypoint   []string                `json:"entrypoint,omitempty"`
	Healthcheck  *container.HealthConfig `json:"healthcheck,omitempty"`
	User         string                  `json:"user,omitempty"`
	WorkingDir   string                  `json:"working_dir,omitempty"`
	StopSignal   string                  `json:"stop_signal,omitempty"`
	Shell        []string                `json:"shell,omitempty"`
	ExposedPorts []string                `json:"exposed_ports,omitempty"`
	Volumes      []string                `json:"volumes,omitempty"`
}

// record builds a service's entry from the engine's inspection of its
// container and image.
func record(service string, c container.InspectResponse, img image.InspectResponse) (ServiceRelease, error) {
	if c.Config == nil || c.HostConfig == nil {
		return ServiceRelease{}, fmt.Errorf("container %s: the engine reported no configuration", strings.TrimPrefix(c.Name, "/"))
	}
	sr := ServiceRelease{
		Service:       service,
		Container:     strings.TrimPrefix(c.Name, "/"),
		ContainerID:   c.ID,
		Image:         c.Config.Image,
		ImageID:       c.Image,
		RepoDigest:    repoDigest(c.Config.Image, img.RepoDigests),
		Mounts:        slices.Clone(c.Mounts),
		ImageDefaults: defaultsOf(img),
	}
	sr.PostgresMajor = postgresMajor(sr.ImageDefaults.Env)
	// Deep copies through JSON, so the record shares nothing with the
	// inspection.
	if err := clone(c.Config, &sr.Config); err != nil {
		return ServiceRelease{}, err
	}
	if err := clone(c.HostConfig, &sr.HostConfig); err != nil {
		return ServiceRelease{}, err
	}
	sr.Networking = &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{}}
	if c.NetworkSettings != nil {
		for name, ep := range c.NetworkSettings.Networks {
			sr.Networking.EndpointsConfig[name] = endpointConfig(ep, c.ID)
		}
	}
	return sr, nil
}

// endpointConfig keeps the configuration of an endpoint and drops its
// operational data (addresses the engine assigned, IDs) and the alias the
// engine adds for the container's short ID.
func endpointConfig(ep *network.EndpointSettings, containerID string) *network.EndpointSettings {
	if ep == nil {
		return &network.EndpointSettings{}
	}
	out := &network.EndpointSettings{
		IPAMConfig: ep.IPAMConfig.Copy(),
		Links:      slices.Clone(ep.Links),
		DriverOpts: ep.DriverOpts,
		GwPriority: ep.GwPriority,
	}
	for _, a := range ep.Aliases {
		if len(containerID) >= 12 && a == containerID[:12] {
			continue
		}
		out.Aliases = append(out.Aliases, a)
	}
	return out
}

func defaultsOf(img image.InspectResponse) *ImageDefaults {
	d := &ImageDefaults{}
	if img.Config == nil {
		return d
	}
	c := img.Config
	d.Env, d.Labels, d.Cmd, d.Entrypoint = slices.Clone(c.Env), c.Labels, slices.Clone(c.Cmd), slices.Clone(c.Entrypoint)
	d.User, d.WorkingDir, d.StopSignal, d.Shell = c.User, c.WorkingDir, c.StopSignal, slices.Clone(c.Shell)
	d.Healthcheck = c.Healthcheck
	for p := range c.ExposedPorts {
		d.ExposedPorts = append(d.ExposedPorts, p)
	}
	for v := range c.Volumes {
		d.Volumes = append(d.Volumes, v)
	}
	slices.Sort(d.ExposedPorts)
	slices.Sort(d.Volumes)
	return d
}

// postgresMajor reads the PostgreSQL major version an image declares in
// its environment: PG_MAJOR, else PG_VERSION's first number, else
// /usr/lib/postgresql/N/bin in PATH (Debian's packages). Empty if none.
func postgresMajor(env []string) string {
	vars := map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		vars[k] = v
	}
	if v := vars["PG_MAJOR"]; v != "" {
		return v
	}
	if v := vars["PG_VERSION"]; v != "" {
		major, _, _ := strings.Cut(v, ".")
		return major
	}
	for _, dir := range strings.Split(vars["PATH"], ":") {
		rest, ok := strings.CutPrefix(dir, "/usr/lib/postgresql/")
		if n, ok2 := strings.CutSuffix(rest, "/bin"); ok && ok2 && n != "" && !strings.Contains(n, "/") {
			return n
		}
	}
	return ""
}

func clone[T any](in T, out *T) error {
	b, err := json.Marshal(in)
	if err != nil {
		return fmt.Errorf("copy container configuration: %w", err)
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("copy container configuration: %w", err)
	}
	return nil
}
