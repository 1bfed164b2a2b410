package upgrade

import (
	"maps"
	"reflect"
	"slices"
	"strings"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"

	"github.com/forlock/fleet/agent/internal/dockerrt"
)

// creation is how one container is created again: the create call and the
// networks to connect before it starts.
type creation struct {
	spec dockerrt.CreateSpec
	// connect are the networks beyond the first, by name.
	connect map[string]*network.EndpointSettings
}

// createSpec derives the creation of a container like src running ref.
// Values src inherited from its image are dropped so that ref's image
// supplies its own; anonymous volumes of src are mounted by name; host
// ports the engine picked are pinned to those running (the bindings of the
// container now serving the service, nil if it is not running).
func createSpec(src ServiceRelease, ref string, running network.PortMap) (creation, error) {
	var cfg container.Config
	var hc container.HostConfig
	if err := clone(*src.Config, &cfg); err != nil {
		return creation{}, err
	}
	if err := clone(*src.HostConfig, &hc); err != nil {
		return creation{}, err
	}
	dropImageDefaults(&cfg, src.ImageDefaults)
	cfg.Image = ref
	// The engine names a container's host after its short ID unless told
	// otherwise; the new container gets its own.
	if len(src.ContainerID) >= 12 && cfg.Hostname == src.ContainerID[:12] {
		cfg.Hostname = ""
	}
	keepAnonymousVolumes(&hc, src.Mounts)
	pinPorts(&hc, running)

	c := creation{connect: map[string]*network.EndpointSettings{}}
	var eps map[string]*network.EndpointSettings
	if src.Networking != nil {
		eps = src.Networking.EndpointsConfig
	}
	primary := string(hc.NetworkMode)
	if _, ok := eps[primary]; !ok && (primary == "" || primary == "default") {
		primary = "bridge"
	}
	for _, name := range slices.Sorted(maps.Keys(eps)) {
		ep := eps[name].Copy()
		if name == primary {
			c.spec.Networking = &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{name: ep}}
			continue
		}
		c.connect[name] = ep
	}
	c.spec.Config, c.spec.HostConfig = &cfg, &hc
	return c, nil
}

// dropImageDefaults removes from cfg what it inherited from the image d
// describes.
func dropImageDefaults(cfg *container.Config, d *ImageDefaults) {
	if d == nil {
		return
	}
	cfg.Env = slices.DeleteFunc(cfg.Env, func(kv string) bool { return slices.Contains(d.Env, kv) })
	if len(cfg.Env) == 0 {
		cfg.Env = nil
	}
	for k, v := range cfg.Labels {
		if iv, ok := d.Labels[k]; ok && iv == v {
			delete(cfg.Labels, k)
		}
	}
	// The engine takes the image's command only when the entrypoint is
	// not set, so the command is dropped only with the entrypoint.
	if slices.Equal(cfg.Entrypoint, d.Entrypoint) {
		cfg.Entrypoint = nil
		if slices.Equal(cfg.Cmd, d.Cmd) {
			cfg.Cmd = nil
		}
	}
	if cfg.Healthcheck != nil && d.Healthcheck != nil && reflect.DeepEqual(*cfg.Healthcheck, *d.Healthcheck) {
		cfg.Healthcheck = nil
	}
	if cfg.User == d.User {
		cfg.User = ""
	}
	if cfg.WorkingDir == d.WorkingDir {
		cfg.WorkingDir = ""
	}
	if cfg.StopSignal == d.StopSignal {
		cfg.StopSignal = ""
	}
	if slices.Equal(cfg.Shell, d.Shell) {
		cfg.Shell = nil
	}
	for p := range cfg.ExposedPorts {
		if slices.Contains(d.ExposedPorts, p.String()) {
			delete(cfg.ExposedPorts, p)
		}
	}
	for v := range cfg.Volumes {
		if slices.Contains(d.Volumes, v) {
			delete(cfg.Volumes, v)
		}
	}
}

// keepAnonymousVolumes mounts, by name, the volumes the container had that
// its configuration does not name (the image's VOLUME paths with no mount
// on them), so the new container reuses them rather than getting empty
// ones.
func keepAnonymousVolumes(hc *container.HostConfig, mounts []container.MountPoint) {
	configured := map[string]bool{}
	for _, b := range hc.Binds {
		parts := strings.Split(b, ":")
		if len(parts) >= 2 {
			configured[parts[1]] = true
		}
	}
	for _, m := range hc.Mounts {
		configured[m.Target] = true
	}
	for _, m := range mounts {
		if m.Type != mount.TypeVolume || m.Name == "" || configured[m.Destination] {
			continue
		}
		hc.Mounts = append(hc.Mounts, mount.Mount{Type: mount.TypeVolume, Source: m.Name, Target: m.Destination, ReadOnly: !m.RW})
	}
}

// pinPorts fills the host ports left to the engine ("" or "0") with those
// the running container has, so that clients of the node keep reaching it.
func pinPorts(hc *container.HostConfig, running network.PortMap) {
	for port, bindings := range hc.PortBindings {
		for i, b := range bindings {
			if b.HostPort != "" && b.HostPort != "0" {
				continue
			}
			for _, r := range running[port] {
				if !b.HostIP.IsValid() || b.HostIP == r.HostIP {
					bindings[i].HostPort = r.HostPort
					break
				}
			}
		}
	}
}
