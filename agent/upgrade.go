package agent

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/forlock/fleet/agent/internal/checks"
	"github.com/forlock/fleet/agent/internal/dockerrt"
	"github.com/forlock/fleet/agent/internal/tasks"
	"github.com/forlock/fleet/agent/internal/upgrade"
)

// UpgradeConfig configures upgrades.
type UpgradeConfig struct {
	// RegistryUsername and RegistryPasswordFile are the image registry's
	// credentials for pulls (FORLOCK_REGISTRY_PASSWORD may hold the
	// password instead of the file); empty pulls anonymously.
	RegistryUsername, RegistryPasswordFile, RegistryPassword string
}

// newUpgradeHandler returns the upgrade and rollback handler, or nil
// without a Docker client. backup makes the pre-upgrade backups.
func (a *Agent) newUpgradeHandler(hc *health, backup tasks.Handler) (*upgrade.Handler, error) {
	if hc.docker == nil {
		return nil, nil
	}
	up, err := upgrade.New(upgrade.Config{Docker: hc.docker, Containers: serviceContainers(a.cfg.Health.Containers), Log: a.log})
	if err != nil {
		return nil, err
	}
	cfg := upgrade.HandlerConfig{
		Upgrader: up,
		History:  upgrade.NewHistory(filepath.Join(a.cfg.StateDir, upgrade.HistoryFile)),
		Backup:   backup,
		Auth:     a.registryAuth,
		Log:      a.log,
	}
	if probe, ok := a.apiProbe(); ok {
		cfg.API = probe
	}
	return upgrade.NewHandler(cfg)
}

// serviceContainers maps each service to its configured container.
func serviceContainers(names []string) map[string]string {
	m := map[string]string{}
	for _, svc := range upgrade.Services {
		if n, ok := containerFor(names, svc); ok {
			m[svc] = n
		}
	}
	return m
}

// containerFor is the configured container of a service, as the Docker
// runtime finds it.
func containerFor(names []string, service string) (string, bool) {
	for _, n := range names {
		if dockerrt.Serves(n, service) {
			return n, true
		}
	}
	return "", false
}

// hasContainer reports whether a service has a configured container.
func hasContainer(names []string, service string) bool {
	_, ok := containerFor(names, service)
	return ok
}

// apiProbe returns one request to the API's health endpoint, as the api
// check makes it, or false when the check's client cannot be set up.
func (a *Agent) apiProbe() (func(ctx context.Context) error, bool) {
	api, err := a.cfg.api()
	if err != nil {
		return nil, false
	}
	path := checks.APIEndpoints[0]
	return func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		switch p := api.Probe(ctx, path); {
		case p.Err != nil:
			return p.Err
		case p.Status != http.StatusOK:
			return fmt.Errorf("GET %s%s: status %d", api.BaseURL, path, p.Status)
		}
		return nil
	}, true
}

// registryAuth reads the registry credentials at each task, so a rotated
// password file is picked up.
func (a *Agent) registryAuth() (dockerrt.RegistryAuth, error) {
	u := a.cfg.Upgrade
	if u.RegistryUsername == "" {
		return dockerrt.RegistryAuth{}, nil
	}
	pw := u.RegistryPassword
	if u.RegistryPasswordFile != "" {
		b, err := os.ReadFile(u.RegistryPasswordFile)
		if err != nil {
			return dockerrt.RegistryAuth{}, fmt.Errorf("registry password file: %w", err)
		}
		pw = strings.TrimSpace(string(b))
	}
	if pw == "" {
		return dockerrt.RegistryAuth{}, errors.New("registry username is set but no password: set registry_password_file or FORLOCK_REGISTRY_PASSWORD")
	}
	return dockerrt.RegistryAuth{Username: u.RegistryUsername, Password: pw}, nil
}
