package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/forlock/fleet/agent/internal/checks"
	"github.com/forlock/fleet/agent/internal/dockerrt"
	"github.com/forlock/fleet/agent/internal/tasks"
	"github.com/forlock/fleet/agent/internal/upgrade"
	"github.com/forlock/fleet/internal/atomicfile"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// UpgradeConfig configures upgrades.
type UpgradeConfig struct {
	// RegistryUsername and RegistryPasswordFile are the image registry's
	// credentials for pulls (FORLOCK_REGISTRY_PASSWORD may hold the
	// password instead of the file); empty pulls anonymously.
	RegistryUsername, RegistryPasswordFile, RegistryPassword string
}

// releasesFile keeps the node's recorded releases, whole (container
// configurations included), so a rollback can recreate them.
const releasesFile = "releases.json"

// maxLocalReleases bounds the history kept in releasesFile.
const maxLocalReleases = 20

// upgradeHandler runs upgrade and rollback tasks.
type upgradeHandler struct {
	a       *Agent
	up      *upgrade.Upgrader
	backup  tasks.Handler
	api     func(ctx context.Context) error // one probe of the API's health endpoint
	history *releaseHistory
}

func (a *Agent) newUpgradeHandler(hc *health, backup tasks.Handler) (*upgradeHandler, error) {
	if hc.docker == nil {
		return nil, nil
	}
	up, err := upgrade.New(upgrade.Config{Docker: hc.docker, Containers: serviceContainers(a.cfg.Health.Containers), Log: a.log})
	if err != nil {
		return nil, err
	}
	h := &upgradeHandler{a: a, up: up, backup: backup, history: &releaseHistory{path: filepath.Join(a.cfg.StateDir, releasesFile)}}
	if c, ok := a.apiProbe(); ok {
		h.api = c
	}
	return h, nil
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

// Run runs an upgrade or rollback task.
func (h *upgradeHandler) Run(ctx context.Context, a tasks.Assignment, report func(*forlockv1.Progress)) (tasks.Result, error) {
	spec := a.Spec
	opts := upgrade.Options{
		Progress: func(e upgrade.Event) {
			report(&forlockv1.Progress{Phase: e.Step + " " + e.Service, Message: e.Message})
		},
	}
	if h.api != nil {
		opts.Health = func(ctx context.Context, service string) error {
			if service != "api" && service != "nginx" {
				return nil
			}
			return h.api(ctx)
		}
	}
	auth, err := h.a.registryAuth()
	if err != nil {
		return tasks.Result{}, err
	}
	opts.Auth = auth

	var res tasks.Result
	var run func(context.Context) (upgrade.Result, error)
	switch {
	case spec.GetUpgrade() != nil:
		u := spec.GetUpgrade()
		opts.HealthTimeout = u.GetHealthTimeout().AsDuration()
		if !u.GetSkipBackup() {
			report(&forlockv1.Progress{Phase: "backup", Message: "backing up before the upgrade"})
			// The backup runs as part of this task, with its keys.
			ba := a
			ba.Spec = &forlockv1.JobSpec{Kind: &forlockv1.JobSpec_Backup{Backup: &forlockv1.BackupSpec{
				Destination: u.GetBackupDestination()}}}
			b, err := h.backup.Run(ctx, ba, report)
			if err != nil {
				return tasks.Result{}, fmt.Errorf("pre-upgrade backup failed, nothing upgraded (skip_backup upgrades without one): %w", err)
			}
			res.Artifacts, res.Details = b.Artifacts, b.Details
		}
		run = func(ctx context.Context) (upgrade.Result, error) {
			return h.up.Upgrade(ctx, upgrade.Spec{Services: u.GetServices(), Target: u.GetTo(), Options: opts})
		}
	case spec.GetRollback() != nil:
		r := spec.GetRollback()
		opts.HealthTimeout = r.GetHealthTimeout().AsDuration()
		cur, err := h.up.Current(ctx)
		if err != nil {
			return tasks.Result{}, err
		}
		to, err := h.history.target(releaseID(cur), r.GetReleaseId())
		if err != nil {
			return tasks.Result{}, err
		}
		run = func(ctx context.Context) (upgrade.Result, error) { return h.up.Rollback(ctx, to, opts) }
	default:
		return tasks.Result{}, errors.New("not an upgrade or rollback task")
	}

	stop := h.measureAPI(ctx)
	ur, err := run(ctx)
	unavailable := stop()
	if ur.Before.Services != nil {
		if herr := h.history.add(ur.Before); herr != nil {
			h.a.log.Warn("could not record the release before the upgrade", "error", herr.Error())
		}
	}
	if err == nil && !ur.RolledBack {
		if herr := h.history.add(ur.After); herr != nil {
			h.a.log.Warn("could not record the new release", "error", herr.Error())
		}
	}
	res.Upgrade = &forlockv1.UpgradeResult{Before: releaseProto(ur.Before, ""), After: releaseProto(ur.After, a.JobID),
		RolledBack: ur.RolledBack, Reason: ur.Reason, ApiUnavailable: durationpb.New(unavailable)}
	res.Details = append(res.Details, upgradeDetails(ur)...)
	switch {
	case ur.RolledBack:
		res.RolledBack = true
		if err == nil {
			err = errors.New(ur.Reason)
		}
		return res, fmt.Errorf("rolled back to the previous release: %w", err)
	case err != nil:
		return res, err
	}
	res.Message = fmt.Sprintf("release %s: %s changed, %s unchanged", releaseID(ur.After),
		listOrNone(ur.Changed), listOrNone(ur.Unchanged))
	return res, nil
}

// measureAPI polls the API's health endpoint every 100 ms until stop is
// called, and returns the time it did not answer 200 (each failed poll
// counts until the next poll).
func (h *upgradeHandler) measureAPI(ctx context.Context) func() time.Duration {
	if h.api == nil {
		return func() time.Duration { return 0 }
	}
	ctx, cancel := context.WithCancel(ctx)
	var (
		mu   sync.Mutex
		down time.Duration
		wg   sync.WaitGroup
	)
	wg.Go(func() {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		last, lastOK := time.Now(), true
		for {
			ok := h.api(ctx) == nil
			now := time.Now()
			mu.Lock()
			if !lastOK {
				down += now.Sub(last)
			}
			mu.Unlock()
			last, lastOK = now, ok
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	})
	return func() time.Duration {
		cancel()
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		return down
	}
}

func upgradeDetails(r upgrade.Result) []string {
	var out []string
	for _, s := range r.After.Services {
		out = append(out, fmt.Sprintf("%s: %s (%s)", s.Service, s.Image, shortID(s.ImageID)))
	}
	if len(r.Recovered) > 0 {
		out = append(out, "recovered from an interrupted upgrade: "+strings.Join(r.Recovered, ", "))
	}
	out = append(out, r.Warnings...)
	return out
}

func listOrNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ",")
}

func shortID(id string) string {
	id = strings.TrimPrefix(id, "sha256:")
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// releaseID names a release by its images: the same images, the same ID.
func releaseID(r upgrade.Release) string {
	h := sha256.New()
	for _, s := range r.Services {
		fmt.Fprintf(h, "%s=%s\n", s.Service, s.ImageID)
	}
	return hex.EncodeToString(h.Sum(nil))[:12]
}

func releaseProto(r upgrade.Release, jobID string) *forlockv1.Release {
	if len(r.Services) == 0 {
		return nil
	}
	out := &forlockv1.Release{Id: releaseID(r), At: timestamppb.New(r.RecordedAt), JobId: jobID}
	for _, s := range r.Services {
		out.Services = append(out.Services, &forlockv1.ServiceImage{Service: s.Service, Container: s.Container,
			Image: s.Image, ImageId: s.ImageID, RepoDigest: s.RepoDigest})
	}
	return out
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

// releaseHistory is the node's recorded releases in a JSON file of the
// state directory (0600: container configurations hold environment
// variables), oldest first.
type releaseHistory struct {
	mu   sync.Mutex
	path string
}

func (h *releaseHistory) load() ([]upgrade.Release, error) {
	b, err := os.ReadFile(h.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var rs []upgrade.Release
	if err := json.Unmarshal(b, &rs); err != nil {
		return nil, fmt.Errorf("%s: %w: move it away to start a new history", h.path, err)
	}
	return rs, nil
}

// add appends r unless it is the newest entry already.
func (h *releaseHistory) add(r upgrade.Release) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	rs, err := h.load()
	if err != nil {
		return err
	}
	if n := len(rs); n > 0 && releaseID(rs[n-1]) == releaseID(r) {
		return nil
	}
	rs = append(rs, r)
	if len(rs) > maxLocalReleases {
		rs = rs[len(rs)-maxLocalReleases:]
	}
	b, err := json.Marshal(rs)
	if err != nil {
		return err
	}
	return atomicfile.Write(h.path, b, 0o600)
}

// target picks the release a rollback returns to: the one with ID id, or,
// without an ID, the newest recorded release that differs from current.
func (h *releaseHistory) target(current, id string) (upgrade.Release, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	rs, err := h.load()
	if err != nil {
		return upgrade.Release{}, err
	}
	for i := len(rs) - 1; i >= 0; i-- {
		rid := releaseID(rs[i])
		if (id != "" && rid == id) || (id == "" && rid != current) {
			return rs[i], nil
		}
	}
	var ids []string
	for _, r := range slices.Backward(rs) {
		ids = append(ids, releaseID(r))
	}
	if id != "" {
		return upgrade.Release{}, fmt.Errorf("release %s is not recorded on this node (recorded: %s)", id, listOrNone(ids))
	}
	return upgrade.Release{}, fmt.Errorf("no earlier release is recorded on this node (current %s): nothing to roll back to", current)
}
