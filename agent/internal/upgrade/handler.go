package upgrade

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/forlock/fleet/agent/internal/dockerrt"
	"github.com/forlock/fleet/agent/internal/tasks"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// HandlerConfig configures a Handler.
type HandlerConfig struct {
	// Upgrader replaces the node's containers. Required.
	Upgrader *Upgrader
	// History records the releases the node ran: an upgrade adds the
	// releases before and after, a rollback picks its target there.
	// Required.
	History *History
	// Backup runs the backup an upgrade makes first (unless the spec
	// skips it), with the upgrade task's keys. Required.
	Backup tasks.Handler
	// API makes one request to the API's health endpoint; nil for none.
	// It gates the new api and nginx containers, and is polled during the
	// task to measure how long the API did not answer.
	API func(ctx context.Context) error
	// Auth returns the registry credentials for pulls, read at each task
	// so a rotated password is picked up; nil pulls anonymously.
	Auth func() (dockerrt.RegistryAuth, error)
	// Log receives what could not be recorded; nil discards.
	Log *slog.Logger
}

// Handler runs upgrade and rollback tasks: an upgrade backs up first, then
// upgrades; a rollback returns to a release of the History. Either way the
// releases before and after are recorded and reported in the task's
// UpgradeResult, with the time the API did not answer.
type Handler struct{ cfg HandlerConfig }

// NewHandler checks cfg and returns the upgrade and rollback handler.
func NewHandler(cfg HandlerConfig) (*Handler, error) {
	if cfg.Upgrader == nil || cfg.History == nil || cfg.Backup == nil {
		return nil, errors.New("upgrade: HandlerConfig needs an Upgrader, a History and a Backup handler")
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &Handler{cfg: cfg}, nil
}

// Run runs an upgrade or rollback task.
func (h *Handler) Run(ctx context.Context, a tasks.Assignment, report func(*forlockv1.Progress)) (tasks.Result, error) {
	opts := Options{
		Progress: func(e Event) {
			report(&forlockv1.Progress{Phase: e.Step + " " + e.Service, Message: e.Message})
		},
	}
	if h.cfg.API != nil {
		opts.Health = func(ctx context.Context, service string) error {
			if service != "api" && service != "nginx" {
				return nil
			}
			return h.cfg.API(ctx)
		}
	}
	if h.cfg.Auth != nil {
		auth, err := h.cfg.Auth()
		if err != nil {
			return tasks.Result{}, err
		}
		opts.Auth = auth
	}

	var res tasks.Result
	var run func(context.Context) (Result, error)
	switch spec := a.Spec; {
	case spec.GetUpgrade() != nil:
		u := spec.GetUpgrade()
		opts.HealthTimeout = u.GetHealthTimeout().AsDuration()
		if !u.GetSkipBackup() {
			report(&forlockv1.Progress{Phase: "backup", Message: "backing up before the upgrade"})
			// The backup runs as part of this task, with its keys.
			ba := a
			ba.Spec = &forlockv1.JobSpec{Kind: &forlockv1.JobSpec_Backup{Backup: &forlockv1.BackupSpec{
				Destination: u.GetBackupDestination()}}}
			b, err := h.cfg.Backup.Run(ctx, ba, report)
			if err != nil {
				return tasks.Result{}, fmt.Errorf("pre-upgrade backup failed, nothing upgraded (skip_backup upgrades without one): %w", err)
			}
			res.Artifacts, res.Details = b.Artifacts, b.Details
		}
		run = func(ctx context.Context) (Result, error) {
			return h.cfg.Upgrader.Upgrade(ctx, Spec{Services: u.GetServices(), Target: u.GetTo(), Options: opts})
		}
	case spec.GetRollback() != nil:
		r := spec.GetRollback()
		opts.HealthTimeout = r.GetHealthTimeout().AsDuration()
		cur, err := h.cfg.Upgrader.Current(ctx)
		if err != nil {
			return tasks.Result{}, err
		}
		to, err := h.cfg.History.Target(cur.ID(), r.GetReleaseId())
		if err != nil {
			return tasks.Result{}, err
		}
		run = func(ctx context.Context) (Result, error) { return h.cfg.Upgrader.Rollback(ctx, to, opts) }
	default:
		return tasks.Result{}, errors.New("not an upgrade or rollback task")
	}

	stop := h.measureAPI(ctx)
	ur, err := run(ctx)
	unavailable := stop()
	if ur.Before.Services != nil {
		if herr := h.cfg.History.Add(ur.Before); herr != nil {
			h.cfg.Log.Warn("could not record the release before the upgrade", "error", herr.Error())
		}
	}
	if err == nil && !ur.RolledBack {
		if herr := h.cfg.History.Add(ur.After); herr != nil {
			h.cfg.Log.Warn("could not record the new release", "error", herr.Error())
		}
	}
	res.Upgrade = &forlockv1.UpgradeResult{Before: ur.Before.proto(""), After: ur.After.proto(a.JobID),
		RolledBack: ur.RolledBack, Reason: ur.Reason, ApiUnavailable: durationpb.New(unavailable)}
	res.Details = append(res.Details, ur.details()...)
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
	res.Message = fmt.Sprintf("release %s: %s changed, %s unchanged", ur.After.ID(),
		listOrNone(ur.Changed), listOrNone(ur.Unchanged))
	return res, nil
}

// measureAPI polls the API's health endpoint every 100 ms until stop is
// called, and returns the time it did not answer 200 (each failed poll
// counts until the next poll).
func (h *Handler) measureAPI(ctx context.Context) func() time.Duration {
	if h.cfg.API == nil {
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
			ok := h.cfg.API(ctx) == nil
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

// details are the task's result lines: each service's image, what was
// recovered, and the warnings.
func (r Result) details() []string {
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

func shortID(id string) string {
	id = strings.TrimPrefix(id, "sha256:")
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// proto is the release as the API reports it, or nil for none; jobID is
// the job that made it, if known.
func (r Release) proto(jobID string) *forlockv1.Release {
	if len(r.Services) == 0 {
		return nil
	}
	out := &forlockv1.Release{Id: r.ID(), At: timestamppb.New(r.RecordedAt), JobId: jobID}
	for _, s := range r.Services {
		out.Services = append(out.Services, &forlockv1.ServiceImage{Service: s.Service, Container: s.Container,
			Image: s.Image, ImageId: s.ImageID, RepoDigest: s.RepoDigest})
	}
	return out
}
