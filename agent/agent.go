// Package agent is forlock-agent, the per-host agent of Forlock Fleet.
//
// An Agent enrolls the host with a join token when its state directory holds
// no identity, then keeps one mutually authenticated control stream
// (AgentService.Connect) to the control plane: hello, heartbeats with host
// facts, ping answers. It reconnects forever with exponential backoff and
// full jitter, renews its client certificate at about two thirds of its
// lifetime without dropping the stream, and re-enrolls under the same name
// when the control plane refuses its identity and a join token is at hand.
//
// It runs the tasks the control plane assigns on that stream, each task ID
// at most once: a journal in the state directory (tasks.db) records every
// task before it starts and keeps its result until the control plane
// acknowledges it. Built-in task kinds: health_check, backup and restore
// (see agent/internal/backup).
//
// The node's health checks (disk, memory, the Forlock containers through
// the Docker Engine API, the API's health endpoints, PostgreSQL and Redis)
// run in the background once per heartbeat interval; each heartbeat carries
// the latest completed report, and the health_check task runs them on
// demand.
//
// Main is the whole forlock-agent command; New and Run let tests start
// agents in-process.
package agent

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/forlock/fleet/agent/internal/backoff"
	"github.com/forlock/fleet/agent/internal/hostinfo"
	"github.com/forlock/fleet/agent/internal/identity"
	"github.com/forlock/fleet/agent/internal/session"
	"github.com/forlock/fleet/agent/internal/tasks"
	"github.com/forlock/fleet/agent/internal/walarchive"
	"github.com/forlock/fleet/internal/buildinfo"
)

// Agent is one forlock-agent. Create it with New, start it with Run.
type Agent struct {
	cfg        Config
	namedByCfg bool // Name was given, not taken from the host name
	log        *slog.Logger
	serverName string
	facts      hostinfo.Collector
	running    atomic.Bool

	// cert is the client certificate offered on new connections; renewal
	// swaps it without touching open ones.
	cert atomic.Pointer[tls.Certificate]

	// tasks runs assigned tasks; set by Run.
	tasks atomic.Pointer[tasks.Runner]

	// The WAL archive: its key store (loaded at Run), the archiver once
	// running, and the outbox of the current session for its reports.
	archiveKeys *walarchive.KeyStore
	archiver    atomic.Pointer[walarchive.Archiver]
	walOutbox   atomic.Pointer[session.Outbox]
	// health runs the health checks; set by Run before any session starts.
	health *health

	mu    sync.Mutex
	id    *identity.Identity // nil until loaded or enrolled
	stats Stats
}

// Stats is a snapshot of an agent's state, for tests and diagnostics.
type Stats struct {
	// NodeID is the node's ID, empty before the first enrollment.
	NodeID string
	// Connected reports whether a control stream is open (ServerHello
	// received and the stream not yet ended).
	Connected bool
	// Sessions counts the control streams that reached the ServerHello.
	Sessions uint64
	// Enrollments counts successful enrollments by this Agent.
	Enrollments uint64
	// CertSerial is the current client certificate's serial, lower-case hex.
	CertSerial string
	// CertNotAfter is the current client certificate's expiry.
	CertNotAfter time.Time
	// TasksStarted counts the tasks this agent executed (the handler was
	// called) in its last Run.
	TasksStarted uint64
	// TasksRunning is how many tasks are running now.
	TasksRunning int
}

// New checks cfg and returns an Agent. It does no I/O beyond looking up the
// host name when cfg.Name is empty.
func New(cfg Config) (*Agent, error) {
	named := cfg.Name != ""
	cfg, err := cfg.validate()
	if err != nil {
		return nil, fmt.Errorf("agent config: %w", err)
	}
	host, _, _ := splitHostPort(cfg.ControlPlane)
	return &Agent{
		cfg:        cfg,
		namedByCfg: named,
		log:        cfg.Logger,
		serverName: host,
		facts:      hostinfo.Collector{StateDir: cfg.StateDir, AgentVersion: buildinfo.Version()},
	}, nil
}

// NodeID returns the node's ID, or "" before the first enrollment.
func (a *Agent) NodeID() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.stats.NodeID
}

// Stats returns a snapshot of the agent's state.
func (a *Agent) Stats() Stats {
	a.mu.Lock()
	st := a.stats
	a.mu.Unlock()
	if r := a.tasks.Load(); r != nil {
		ts := r.Stats()
		st.TasksStarted, st.TasksRunning = ts.Started, ts.Running
	}
	return st
}

func (a *Agent) identity() *identity.Identity {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.id
}

// setIdentity makes id current: for Stats and for the next TLS handshakes.
func (a *Agent) setIdentity(id *identity.Identity) {
	a.cert.Store(id.TLSCertificate())
	a.mu.Lock()
	defer a.mu.Unlock()
	a.id = id
	a.stats.NodeID = id.NodeID
	a.stats.CertSerial = id.Serial()
	a.stats.CertNotAfter = id.Leaf().NotAfter
}

func (a *Agent) setConnected(c bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.stats.Connected = c
	if c {
		a.stats.Sessions++
	}
}

// Run runs the agent until ctx ends, and then returns nil. It returns an
// error only for what retrying cannot mend: a damaged state directory, or
// no identity and no way to enroll.
func (a *Agent) Run(ctx context.Context) error {
	if !a.running.CompareAndSwap(false, true) {
		return errors.New("agent is already running")
	}
	defer a.running.Store(false)

	store, err := identity.Open(a.cfg.StateDir)
	if err != nil {
		return err
	}
	id, err := store.Load()
	switch {
	case err == nil:
		a.setIdentity(id)
		a.log.Info("loaded node identity", "state_dir", store.Dir(), "node_id", id.NodeID, "name", id.Name,
			"cert_serial", id.Serial(), "cert_not_after", id.Leaf().NotAfter)
		if a.namedByCfg && id.Name != a.cfg.Name {
			a.log.Warn("the state directory holds the identity of another node name; keeping it",
				"name", id.Name, "configured_name", a.cfg.Name)
		}
	case errors.Is(err, identity.ErrNotFound):
		if a.cfg.JoinToken == "" && a.cfg.JoinTokenFile == "" {
			return fmt.Errorf("no node identity in %s and no join token to enroll with: pass --join-token-file, %s or --join-token", store.Dir(), JoinTokenEnv)
		}
		if a.cfg.CAFile == "" {
			return fmt.Errorf("no node identity in %s: enrolling needs the fleet CA bundle to verify the control plane: pass --ca-file", store.Dir())
		}
		a.log.Info("no node identity yet: enrolling", "state_dir", store.Dir(), "name", a.cfg.Name)
	default:
		return fmt.Errorf("%w: repair or move the damaged file (the agent never deletes its state directory)", err)
	}
	if err := a.openArchiveKeys(); err != nil {
		return err
	}
	hc := a.cfg.newHealth()
	defer hc.close()
	a.health = hc
	if a.cfg.WAL.Archive {
		// Archiving turned off is a choice, not a finding: no check then.
		hc.suite.Services = append(hc.suite.Services, a.walCheck())
	}
	taskJournal, runner, err := a.openTasks(hc)
	if err != nil {
		return err
	}
	defer func() { _ = taskJournal.Close() }()
	// The checks run in the background; heartbeats carry the latest report.
	var bg sync.WaitGroup
	defer bg.Wait()
	monitorCtx := ctx // ctx is replaced below
	bg.Go(func() { _ = hc.monitor.Run(monitorCtx) })
	bg.Go(func() { _ = hc.logins.Run(monitorCtx) })
	bg.Go(func() { a.runArchiver(monitorCtx, hc) })
	ctx, stop := stopTasksFirst(ctx, runner)
	defer stop()

	l := &loop{a: a, store: store, bo: backoff.New(a.cfg.MinBackoff, a.cfg.MaxBackoff)}
	l.stableAfter = 10 * l.bo.Ceiling()
	for ctx.Err() == nil {
		if l.prepare(ctx) {
			l.connect(ctx, runner)
		}
	}
	a.log.Info("agent stopped")
	return nil
}
