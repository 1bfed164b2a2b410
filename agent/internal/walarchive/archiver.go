package walarchive

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/forlock/fleet/agent/internal/checks"
	"github.com/forlock/fleet/agent/internal/dockerrt"
	"github.com/forlock/fleet/internal/backupstore"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// Defaults of Config.
const (
	DefaultSlot         = "forlock_archive"
	DefaultSpoolDir     = "/var/lib/postgresql/forlock-wal-spool"
	DefaultShipInterval = time.Second
	maxRetryWait        = 30 * time.Second
)

// Docker is the one Docker call the archiver needs.
type Docker interface {
	Exec(ctx context.Context, service, user string, cmd []string, stdin io.Reader, stdout io.Writer) (dockerrt.ExecResult, error)
}

// Config configures an Archiver.
type Config struct {
	// Docker runs pg_receivewal, psql, find, cat and rm in the postgres
	// container, as User (default "postgres", who authenticates by peer on
	// the local socket, as pg_basebackup does).
	Docker Docker
	User   string
	// Node is the node's name, written into each file's header.
	Node string
	// Store and Prefix are where the files go: Prefix is
	// "wal/<node-id>/". The archive is a host directory or an S3 bucket;
	// retention lists it to delete old files.
	Store  backupstore.Lister
	Prefix string
	// Destination names Store in WalReports.
	Destination *forlockv1.BackupDestination
	// Keys holds the archive key.
	Keys *KeyStore
	// StateDir keeps the archiver's state (wal-archive.json).
	StateDir string
	// Slot is the physical replication slot (default DefaultSlot).
	Slot string
	// SpoolDir is pg_receivewal's directory inside the postgres container
	// (default DefaultSpoolDir, beside the data directory, outside the data
	// volume so it is never part of a base backup).
	SpoolDir string
	// ShipInterval is how often the spool is looked at and complete
	// segments are shipped (default DefaultShipInterval).
	ShipInterval time.Duration
	// PartialInterval is how often at most the growing partial segment is
	// shipped again (default ShipInterval): each time is one write of its
	// whole flushed prefix, so a store that charges per request (S3) gets
	// a longer one.
	PartialInterval time.Duration
	Logger          *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Archiver streams and ships one node's WAL. Run it once.
type Archiver struct {
	cfg     Config
	mu      sync.Mutex
	st      state
	running bool
	lastErr string
	failing time.Time // when shipping began to fail; zero when it works
	// partialAt is when the partial segment was last shipped (only the
	// ship loop touches it).
	partialAt time.Time
	changed   chan struct{}
	// written are the server's WAL write positions read at the last ticks,
	// oldest first (used by the stream goroutine only): a range's end time
	// is the newest one the archive has reached (archivedAt).
	written []written
}

// New loads the archiver's state from cfg.StateDir.
func New(cfg Config) (*Archiver, error) {
	if cfg.Docker == nil || cfg.Store == nil || cfg.Keys == nil || cfg.StateDir == "" || cfg.Node == "" {
		return nil, errors.New("WAL archiver: Docker, Store, Keys, StateDir and Node are required")
	}
	if err := backupstore.ValidateName(cfg.Prefix + "00000001/x"); err != nil {
		return nil, fmt.Errorf("WAL archiver: prefix %q: %w", cfg.Prefix, err)
	}
	if cfg.User == "" {
		cfg.User = "postgres"
	}
	if cfg.Slot == "" {
		cfg.Slot = DefaultSlot
	}
	if !slotRe.MatchString(cfg.Slot) {
		return nil, fmt.Errorf("WAL archiver: slot name %q: use lower-case letters, digits and _ (at most 63)", cfg.Slot)
	}
	if cfg.SpoolDir == "" {
		cfg.SpoolDir = DefaultSpoolDir
	}
	if cfg.ShipInterval <= 0 {
		cfg.ShipInterval = DefaultShipInterval
	}
	cfg.PartialInterval = max(cfg.PartialInterval, cfg.ShipInterval)
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	st, err := loadState(cfg.StateDir)
	if err != nil {
		return nil, err
	}
	return &Archiver{cfg: cfg, st: st, changed: make(chan struct{}, 1)}, nil
}

// Changed is signalled (without blocking) whenever the report changes.
func (a *Archiver) Changed() <-chan struct{} { return a.changed }

func (a *Archiver) notify() {
	select {
	case a.changed <- struct{}{}:
	default:
	}
}

// Report returns the archive's state for the control plane.
func (a *Archiver) Report() *forlockv1.WalReport {
	a.mu.Lock()
	defer a.mu.Unlock()
	rep := a.st.report(a.cfg.Destination)
	rep.Streaming = a.running
	if !a.running {
		rep.Error = a.lastErr
	}
	return rep
}

// Health is the archive's state for the wal_archive check.
func (a *Archiver) Health() checks.WalState {
	a.mu.Lock()
	defer a.mu.Unlock()
	gap, after := a.st.gap()
	return checks.WalState{Streaming: a.running, Error: a.lastErr, Gap: gap, GapAfter: after.String(), FailingSince: a.failing}
}

// NoteBaseBackup records the start of a new physical base backup. WAL
// contiguous from it heals any earlier gap.
func (a *Archiver) NoteBaseBackup(timeline uint32, start LSN) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.st.BaseTimeline, a.st.BaseLSN = timeline, start
	defer a.notify()
	return a.st.save(a.cfg.StateDir)
}

func (a *Archiver) setRunning(running bool, err error) {
	a.mu.Lock()
	a.running = running
	if err != nil {
		a.lastErr = err.Error()
	}
	a.mu.Unlock()
	a.notify()
}

// Run archives until ctx ends: it starts pg_receivewal and ships what it
// writes; when the receiver stops (PostgreSQL restarted, slot lost, no key
// yet) it waits, doubling up to 30 s, and starts again. Nothing it meets
// ends it but ctx.
func (a *Archiver) Run(ctx context.Context) error {
	wait := a.cfg.ShipInterval
	for {
		start := a.cfg.Now()
		err := a.stream(ctx)
		if ctx.Err() != nil {
			return nil //nolint:nilerr // cancellation is a clean end
		}
		a.setRunning(false, err)
		a.cfg.Logger.Warn("WAL archiving stopped; retrying", "error", err, "retry_in", wait.String())
		if a.cfg.Now().Sub(start) > maxRetryWait {
			wait = a.cfg.ShipInterval // it ran a while: start over
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		wait = min(2*wait, maxRetryWait)
	}
}

// stream runs one pg_receivewal and ships until it ends.
func (a *Archiver) stream(ctx context.Context) error {
	if _, err := a.cfg.Keys.Current(); err != nil {
		return err
	}
	if err := a.prepare(ctx); err != nil {
		return err
	}
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- a.receive(rctx) }()
	a.setRunning(true, nil)
	tick := time.NewTicker(a.cfg.ShipInterval)
	defer tick.Stop()
	wait := a.cfg.ShipInterval
	next := time.Time{}
	for {
		select {
		case <-ctx.Done():
			return errors.Join(ctx.Err(), <-done)
		case err := <-done:
			// Ship what it wrote before it ended.
			if serr := a.shipSpool(ctx, true); serr != nil {
				err = errors.Join(err, serr)
			}
			return err
		case <-tick.C:
		}
		if now := a.cfg.Now(); now.Before(next) {
			continue
		}
		if err := a.shipSpool(ctx, false); err != nil && ctx.Err() == nil {
			// The destination is full or away: keep streaming into the
			// spool, try again later, not at every tick.
			a.mu.Lock()
			a.lastErr = err.Error()
			if a.failing.IsZero() {
				a.failing = a.cfg.Now()
			}
			a.mu.Unlock()
			a.cfg.Logger.Warn("cannot ship WAL; it stays in the spool", "error", err, "retry_in", wait.String())
			next = a.cfg.Now().Add(wait)
			wait = min(2*wait, maxRetryWait)
			continue
		}
		wait, next = a.cfg.ShipInterval, time.Time{}
		a.mu.Lock()
		a.failing = time.Time{}
		a.mu.Unlock()
	}
}
