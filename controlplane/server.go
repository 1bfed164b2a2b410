// Package controlplane is forlock-controlplane: the gRPC server that keeps
// the fleet's node registry and join tokens in bbolt, enrolls agents, holds
// their control streams and serves the operator API.
//
// New prepares everything (data dir, CA, server certificate, database, admin
// credential, listener); Run serves until its context ends. Tests start it
// in-process with Listen "127.0.0.1:0".
package controlplane

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"

	"path/filepath"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"

	"github.com/forlock/fleet/controlplane/internal/alerts"
	"github.com/forlock/fleet/controlplane/internal/api"
	"github.com/forlock/fleet/controlplane/internal/audit"
	"github.com/forlock/fleet/controlplane/internal/auth"
	"github.com/forlock/fleet/controlplane/internal/jobs"
	"github.com/forlock/fleet/controlplane/internal/limit"
	"github.com/forlock/fleet/controlplane/internal/logs"
	"github.com/forlock/fleet/controlplane/internal/metrics"
	"github.com/forlock/fleet/controlplane/internal/notify"
	"github.com/forlock/fleet/controlplane/internal/registry"
	"github.com/forlock/fleet/controlplane/internal/scheduler"
	"github.com/forlock/fleet/controlplane/internal/snapshot"
	"github.com/forlock/fleet/controlplane/internal/store"
	"github.com/forlock/fleet/controlplane/internal/vault"
	"github.com/forlock/fleet/controlplane/internal/wal"
	"github.com/forlock/fleet/internal/keys"
	"github.com/forlock/fleet/internal/labels"
	"github.com/forlock/fleet/internal/pki"
)

// Server is a running control plane.
type Server struct {
	cfg       Config
	log       *slog.Logger
	store     *store.Store
	registry  *registry.Registry
	jobs      *jobs.Engine
	sched     *scheduler.Scheduler
	ca        *pki.CA
	admin     []byte
	lis       net.Listener
	grpc      *grpc.Server
	health    *health.Server
	ctlConfig string
	vault     *vault.Client // nil without Vault
	// archiveKeys and wal are the WAL archive's keys and reports.
	archiveKeys *wal.Keys
	wal         *wal.Archive

	snapshots *snapshot.Saver
	restored  *store.RestoredFrom // nil unless restored from a snapshot

	// metrics is nil unless cfg.Metrics.Listen is set; metricsSrv serves it.
	metrics    *metrics.Metrics
	metricsSrv *metrics.Server

	// alerts is the built-in alerting's evaluator and firing set;
	// notifier delivers its notifications (nil without receivers).
	alerts   *alerts.Evaluator
	notifier *notify.Notifier

	auditKey     *audit.Key
	auditOutside []string // checkpoint files outside the database
	auditCheck   atomic.Pointer[auditVerified]
	auditor      *api.Auditor
}

// New prepares a control plane from cfg: it creates or loads the data dir,
// opens the database and starts listening, but serves nothing until Run.
func New(cfg Config) (*Server, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	dir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	cfg.DataDir = dir // forlockctl.yaml names files in it by absolute path
	now := time.Now()
	if err := prepareDataDir(cfg.DataDir); err != nil {
		return nil, err
	}
	if err := cfg.checkSecretFiles(); err != nil {
		return nil, err
	}
	ca, created, err := loadOrCreateCA(cfg.DataDir, now)
	if err != nil {
		return nil, err
	}
	if created {
		cfg.Logger.Info("created fleet CA", "path", filepath.Join(cfg.DataDir, caCertFile))
	}
	lis, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w (is another control plane running? change --listen)", cfg.Listen, err)
	}
	s := &Server{cfg: cfg, log: cfg.Logger, ca: ca, lis: lis}
	if cfg.Metrics.Listen != "" {
		s.metrics = metrics.New()
	}
	err = s.init(now)
	if err == nil && s.metrics != nil {
		s.metrics.Watch(s.registry, s.store, s.log)
		s.metrics.WatchAlerts(s.alerts.Counts)
		s.metrics.WatchAudit(s.auditState)
		s.metricsSrv, err = s.metrics.Listen(cfg.Metrics, s.log)
	}
	if err != nil {
		_ = lis.Close()
		if s.store != nil {
			_ = s.store.Close()
		}
		return nil, err
	}
	return s, nil
}

func (s *Server) init(now time.Time) error {
	host, port, _ := net.SplitHostPort(s.lis.Addr().String())
	names := append([]string{"localhost", "127.0.0.1"}, s.cfg.AdvertiseNames...)
	if ip := net.ParseIP(host); ip != nil && !ip.IsUnspecified() {
		names = append(names, host)
	}
	cert, err := loadOrIssueServerCert(s.cfg.DataDir, s.ca, dedupe(names), now)
	if err != nil {
		return err
	}
	opts := store.Options{DiskReserve: s.cfg.Limits.DiskReserve}
	if s.metrics != nil {
		opts.ObserveCommit = s.metrics.ObserveCommit
	}
	s.store, err = store.OpenWith(filepath.Join(s.cfg.DataDir, dbFile), opts)
	if err != nil {
		return err
	}
	if err := s.openAudit(); err != nil {
		return err
	}
	s.registry, err = registry.New(s.store, s.cfg.HeartbeatInterval, s.log)
	if err != nil {
		return err
	}
	if err := s.loadRestored(); err != nil {
		return err
	}
	if s.snapshots, err = s.newSnapshots(); err != nil {
		return err
	}
	kek, err := keys.LoadOrCreateFile(filepath.Join(s.cfg.DataDir, kekFile))
	if err != nil {
		return fmt.Errorf("backup key-encryption key: %w", err)
	}
	var wrapper jobs.KeyWrapper = kek
	var certSrc jobs.CertSource
	if s.cfg.Vault != nil {
		if wrapper, err = s.openVault(kek); err != nil {
			return err
		}
		certSrc = vaultCerts{v: s.vault, cfg: s.cfg.Certs.withDefaults()}
	}
	if s.alerts, err = s.newAlerts(); err != nil {
		return err
	}
	l := s.cfg.Limits
	var observer jobs.Observer
	if s.metrics != nil {
		observer = s.metrics
	}
	s.jobs, err = jobs.New(jobs.Config{Observer: observer, Outcomes: s.alerts, Store: s.store, Registry: s.registry, Logger: s.log, Keys: wrapper, Certs: certSrc,
		Limits: jobs.Limits{ProgressInterval: l.ProgressEventInterval, ProgressMessageMax: l.ProgressMessageMax,
			EventsPerJob: l.JobEventsMax, EventsPerTask: l.JobEventsPerTask, SampleEvery: l.JobEventsSampleEvery}})
	if err != nil {
		return err
	}
	s.archiveKeys = wal.NewKeys(s.store, wrapper, s.cfg.ArchiveKeyRotation, nil)
	s.wal = wal.New(wal.Config{Store: s.store, Keys: s.archiveKeys, Checks: s.registry, Jobs: s.jobs, Log: s.log})
	if s.sched, err = s.newScheduler(); err != nil {
		return err
	}
	s.ctlConfig = filepath.Join(s.cfg.DataDir, ctlConfigFile)
	if err := s.ensureAdmin(net.JoinHostPort(dialHost(host, s.cfg.AdvertiseNames), port)); err != nil {
		return err
	}
	s.grpc = s.newGRPCServer(cert)
	return nil
}

// newScheduler wires the backup schedules, retention and, with Vault to
// issue certificates from, the certificate policy to the store, registry
// and job engine.
func (s *Server) newScheduler() (*scheduler.Scheduler, error) {
	return scheduler.New(scheduler.Config{
		Jobs: s.jobs, Catalog: s.store, Nodes: s.registry, Certificates: s.store, Logger: s.log,
		Backups: s.cfg.BackupSchedules, Verify: s.cfg.VerifySchedules, RetentionInterval: s.cfg.RetentionInterval,
		WALRetention: s.cfg.WALRetention, WAL: s.store,
		CertPolicy: s.cfg.Vault != nil, CertCheckInterval: s.cfg.CertCheckInterval,
	})
}

// newAlerts makes the built-in alerting's evaluator over the registry and
// the store; it evaluates every heartbeat interval unless told otherwise,
// so a CRITICAL check alerts within two heartbeats.
func (s *Server) newAlerts() (*alerts.Evaluator, error) {
	a := s.cfg.Alerting
	interval := a.EvaluationInterval
	if interval == 0 {
		interval = s.cfg.HeartbeatInterval
	}
	var selectors []labels.Selector
	for _, b := range s.cfg.BackupSchedules {
		sel, err := labels.ParseSelector(b.Selector)
		if err != nil {
			return nil, fmt.Errorf("backup schedule %s: %w", b.Name, err)
		}
		selectors = append(selectors, sel)
	}
	var sink alerts.Sink
	var err error
	if s.notifier, sink, err = s.newNotifier(); err != nil {
		return nil, err
	}
	return alerts.New(alerts.Config{Fleet: s.registry, Store: s.store, Sink: sink, Log: s.log,
		Interval: interval, Warmup: max(2*interval, 2*s.cfg.HeartbeatInterval),
		Thresholds: a.Thresholds, Overrides: a.Overrides, JobAlertDuration: a.JobAlertDuration, BackupSelectors: selectors,
		Audit: s.auditState})
}

// dialHost picks the host forlockctl should dial: the listen address if it
// is specific, else the first advertised name, else loopback.
func dialHost(listenHost string, advertise []string) string {
	if ip := net.ParseIP(listenHost); ip != nil && !ip.IsUnspecified() {
		return listenHost
	}
	if len(advertise) > 0 {
		return advertise[0]
	}
	return "127.0.0.1"
}

func (s *Server) newGRPCServer(cert tls.Certificate) *grpc.Server {
	lim := s.cfg.Limits
	conns := limit.NewConns(limit.ConnConfig{MaxPerAddr: lim.UnauthConnsPerAddress, Log: s.log})
	agents := &api.AgentAPI{
		Store: s.store, Registry: s.registry, Jobs: s.jobs, CA: s.ca, Log: s.log,
		CertTTL: s.cfg.AgentCertTTL, CertGrace: s.cfg.AgentCertGrace, Hooks: s.cfg.enrollHooks,
		Stream:      api.StreamLimits{Rate: s.cfg.Limits.AgentControlRate, Burst: s.cfg.Limits.AgentControlBurst},
		ArchiveKeys: s.archiveKeys, WAL: s.wal,
	}
	s.auditor = &api.Auditor{Store: s.store, Failures: &audit.Failures{}, Log: s.log, RequireReason: s.cfg.Audit.RequireReason}
	checker := &auth.Checker{Nodes: s.registry, Admin: func() []byte { return s.admin }, NodeRefused: agents.NodeRefused,
		Identities: s.store.IdentityByHash, Denied: s.auditor.Denied, Failed: s.auditor.Failed, Adopt: s.registry.Adopt,
		Conns: conns, Log: s.log,
		Failures: limit.NewFailures(limit.FailureConfig{Max: lim.AuthFailures, Window: lim.AuthFailureWindow,
			Block: lim.AuthBlock, MaxAddrs: lim.TrackedAddresses})}
	agents.Gate = checker
	var opts []grpc.ServerOption
	if s.metrics != nil {
		checker.Refused, agents.EnrollFailed = s.metrics.AuthFailed, s.metrics.EnrollFailed
		// Outermost, so refused credentials count with their status code.
		opts = append(opts, grpc.ChainUnaryInterceptor(s.metrics.GRPC.UnaryServerInterceptor()),
			grpc.ChainStreamInterceptor(s.metrics.GRPC.StreamServerInterceptor()))
	}
	opts = append(opts, api.Interceptors(s.log, checker, s.auditor)...)
	srv := grpc.NewServer(append(opts,
		// Connections without a fleet client certificate are capped per
		// address right after the handshake.
		grpc.Creds(conns.Credentials(credentials.NewTLS(api.ServerTLS(cert, s.ca.Pool())))),
		// The handshake and the HTTP/2 preface must finish in time; metadata
		// over the cap is refused by the HTTP/2 layer, before any interceptor.
		grpc.ConnectionTimeout(lim.HandshakeTimeout),
		grpc.MaxHeaderListSize(uint32(lim.MaxHeaderBytes)), //nolint:gosec // validated: 8 KiB to 16 MiB
		grpc.MaxRecvMsgSize(1<<20),
		grpc.MaxConcurrentStreams(64),
		// MaxConnectionIdle closes a connection with no call in progress:
		// gRPC counts streams, not bytes, so pings do not keep an idle
		// connection alive, and an agent's control stream keeps its own busy.
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second,
			MaxConnectionIdle: lim.IdleConnTimeout}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
	)...)
	broker := logs.NewBroker()
	agents.Broker = broker
	api.Services{
		Agents:       agents,
		Logs:         &api.LogAPI{Registry: s.registry, Broker: broker, Log: s.log},
		Backups:      &api.BackupAPI{Store: s.store, Registry: s.registry, Jobs: s.jobs, Log: s.log, ArchiveKeys: s.archiveKeys},
		Certs:        &api.CertAPI{Store: s.store, Registry: s.registry, Log: s.log},
		Jobs:         &api.JobAPI{Jobs: s.jobs, Registry: s.registry, Log: s.log},
		Nodes:        &api.NodeAPI{Store: s.store, Registry: s.registry, Log: s.log},
		ControlPlane: &api.ControlPlaneAPI{Disk: s.store, Snapshots: s.snapshots, Audit: s.store, Log: s.log, Restored: s.restoredStatus},
		Access:       &api.AccessAPI{Store: s.store, Log: s.log},
		Audit:        &api.AuditAPI{Store: s.store, Key: s.auditKey.Public(), Outside: s.auditOutside, Log: s.log},
		Alerts:       &api.AlertAPI{Alerts: s.alerts, Registry: s.registry},
	}.Register(srv)
	s.health = health.NewServer()
	healthpb.RegisterHealthServer(srv, s.health)
	reflection.Register(srv)
	return srv
}

// Addr is the address the server listens on.
func (s *Server) Addr() net.Addr { return s.lis.Addr() }

// MetricsAddr is the address of the metrics listener, nil when it is off.
func (s *Server) MetricsAddr() net.Addr {
	if s.metricsSrv == nil {
		return nil
	}
	return s.metricsSrv.Addr()
}

// CAFile is the path of the fleet CA certificate agents and forlockctl trust.
func (s *Server) CAFile() string { return filepath.Join(s.cfg.DataDir, caCertFile) }

// CtlConfigFile is the path of the generated forlockctl config.
func (s *Server) CtlConfigFile() string { return s.ctlConfig }

// Run serves until ctx ends, then closes every agent stream with a goodbye,
// stops the server and closes the database. It returns nil on a clean stop.
func (s *Server) Run(ctx context.Context) error {
	defer func() {
		if cerr := s.store.Close(); cerr != nil {
			s.log.Error("closing the database failed", "err", cerr)
		}
	}()
	g, gctx := errgroup.WithContext(ctx)
	regCtx, stopRegistry := context.WithCancel(context.Background())
	g.Go(func() error { return s.registry.Run(regCtx) })
	g.Go(func() error { return s.jobs.Run(regCtx) })
	g.Go(func() error { return s.wal.Run(regCtx) })
	if s.vault != nil {
		g.Go(func() error { return s.vault.Run(gctx) })
	}
	g.Go(func() error { return s.sched.Run(gctx) })
	g.Go(func() error { return s.alerts.Run(gctx) })
	if s.notifier != nil {
		g.Go(func() error { return s.notifier.Run(gctx) })
	}
	if s.metricsSrv != nil {
		g.Go(func() error { return s.metricsSrv.Serve(gctx) })
	}
	g.Go(func() error { return s.runAuditRetention(gctx) })
	g.Go(func() error { return s.runAuditVerify(gctx) })
	g.Go(func() error { return s.snapshots.RunSchedule(gctx, s.cfg.Snapshots, s.log) })
	flush := s.cfg.Audit.FailureFlush
	if flush <= 0 {
		flush = 10 * time.Second
	}
	g.Go(func() error { return s.auditor.Run(gctx, flush) })
	g.Go(func() error {
		s.log.Info("control plane serving", "addr", s.lis.Addr().String(), "data_dir", s.cfg.DataDir)
		if err := s.grpc.Serve(s.lis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			return fmt.Errorf("serve: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		s.health.Shutdown()
		s.registry.CloseAll("control plane shutting down")
		done := make(chan struct{})
		go func() { s.grpc.GracefulStop(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			s.grpc.Stop()
		}
		stopRegistry()
		return nil
	})
	err := g.Wait()
	s.log.Info("control plane stopped")
	return err
}

func dedupe(in []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}
