package scheduler

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"time"

	"golang.org/x/sync/errgroup"

	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// Jobs is what the scheduler needs of the job engine: submit a job (once
// per idempotency key; created says whether this call made it) and read
// one back.
type Jobs interface {
	Submit(ctx context.Context, req *forlockv1.SubmitJobRequest) (job *forlockv1.Job, created bool, err error)
	Get(id string) (*forlockv1.Job, error)
}

// Config is what a Scheduler works with.
type Config struct {
	// Jobs runs what the scheduler submits. Required.
	Jobs Jobs
	// Catalog is read by retention. Required with Backups.
	Catalog Catalog
	// Backups are the backup schedules; none runs neither backups nor
	// retention. Each is checked by New (see CheckSchedules).
	Backups []BackupSchedule
	// Verify are the restore drill schedules (see VerifySchedule); each is
	// checked by New. They need Nodes.
	Verify []VerifySchedule
	// RetentionInterval is how often retention looks at the catalog
	// besides after each scheduled backup; 0 means DefaultRetentionInterval.
	RetentionInterval time.Duration
	// WAL is the WAL catalog; with it, WAL retention runs every
	// RetentionInterval (needs Catalog too).
	WAL WALCatalog
	// WALRetention is how long WAL is kept; 0 means DefaultWALRetention.
	WALRetention time.Duration
	// CertPolicy turns the certificate rotation policy on (the control
	// plane does when it has Vault to issue certificates from).
	CertPolicy bool
	// Nodes and Certificates are read by the certificate policy. Required
	// with CertPolicy.
	Nodes        Nodes
	Certificates Certificates
	// CertCheckInterval is how often the certificate policy looks at the
	// fleet; 0 means DefaultCertCheckInterval.
	CertCheckInterval time.Duration
	// Logger receives what was submitted and what failed; nil discards.
	Logger *slog.Logger
}

// Scheduler submits scheduled backups, retention deletes and certificate
// rotations. Run does the work.
type Scheduler struct {
	cfg Config
	log *slog.Logger
}

// New checks cfg and returns a Scheduler that does nothing until Run.
func New(cfg Config) (*Scheduler, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.RetentionInterval <= 0 {
		cfg.RetentionInterval = DefaultRetentionInterval
	}
	if cfg.CertCheckInterval <= 0 {
		cfg.CertCheckInterval = DefaultCertCheckInterval
	}
	switch {
	case cfg.Jobs == nil:
		return nil, errors.New("scheduler: no job engine")
	case len(cfg.Backups) > 0 && cfg.Catalog == nil:
		return nil, errors.New("scheduler: backup schedules without a catalog")
	case len(cfg.Verify) > 0 && cfg.Nodes == nil:
		return nil, errors.New("scheduler: verify schedules without nodes")
	case cfg.CertPolicy && (cfg.Nodes == nil || cfg.Certificates == nil):
		return nil, errors.New("scheduler: certificate policy without nodes or certificates")
	}
	cfg.Backups = append([]BackupSchedule(nil), cfg.Backups...)
	if err := CheckSchedules(cfg.Backups); err != nil {
		return nil, err
	}
	cfg.Verify = append([]VerifySchedule(nil), cfg.Verify...)
	if err := CheckVerifySchedules(cfg.Verify); err != nil {
		return nil, err
	}
	return &Scheduler{cfg: cfg, log: cfg.Logger}, nil
}

// Run runs the backup schedules with retention and the certificate policy,
// those configured, until ctx ends; it returns nil then, and at once when
// nothing is configured.
func (s *Scheduler) Run(ctx context.Context) error {
	g, gctx := errgroup.WithContext(ctx)
	if s.cfg.CertPolicy {
		g.Go(func() error { return s.runCertPolicy(gctx, s.cfg.CertCheckInterval) })
	}
	if s.cfg.WAL != nil && s.cfg.Catalog != nil {
		g.Go(func() error { return s.runWALRetention(gctx, s.cfg.RetentionInterval) })
	}
	if len(s.cfg.Verify) > 0 {
		g.Go(func() error { return s.runVerifySchedules(gctx, s.cfg.Verify) })
	}
	if len(s.cfg.Backups) > 0 {
		g.Go(func() error { return s.runBackupSchedules(gctx, s.cfg.Backups, s.cfg.RetentionInterval) })
	}
	return g.Wait()
}
