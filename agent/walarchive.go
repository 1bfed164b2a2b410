package agent

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/forlock/fleet/agent/internal/checks"
	"github.com/forlock/fleet/agent/internal/dbsource"
	"github.com/forlock/fleet/agent/internal/walarchive"
	"github.com/forlock/fleet/internal/backupstore"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// WalConfig configures continuous WAL archiving.
//
// Archiving is on by default in the agent's settings (wal_archive; the
// zero Config, used by embedding tests, has it off): it stays inert (no replication slot, nothing
// started) until the control plane sends the node an archive key, so the
// control plane decides which nodes archive, and a node enrolled with a
// control plane that archives gets the RPO of seconds without another
// setting. Turn it off to keep the agent from ever creating the slot.
type WalConfig struct {
	// Archive turns archiving on.
	Archive bool
	// Dir is the host directory the WAL goes to, inside one of the backup
	// directories; files land in <Dir>/wal/<node-id>/<timeline>/.
	// Default: the first backup directory.
	Dir string
	// ShipInterval is how often new WAL is shipped (default 1s).
	ShipInterval time.Duration
	// Slot is the replication slot (default forlock_archive).
	Slot string
}

// walReportEvery bounds how often WalReports are sent on change.
const walReportEvery = 2 * time.Second

func (w WalConfig) validate(b BackupConfig) (WalConfig, error) {
	if w.Dir == "" && len(b.BackupDirs) > 0 {
		w.Dir = b.BackupDirs[0]
	}
	if w.ShipInterval == 0 {
		w.ShipInterval = walarchive.DefaultShipInterval
	}
	if w.ShipInterval < 100*time.Millisecond || w.ShipInterval > time.Hour {
		return w, fmt.Errorf("wal ship interval %s: between 100ms and 1h", w.ShipInterval)
	}
	if w.Slot == "" {
		w.Slot = walarchive.DefaultSlot
	}
	if err := absClean(w.Dir); err != nil {
		return w, fmt.Errorf("wal archive dir: %w", err)
	}
	for _, d := range b.BackupDirs {
		if w.Dir == d || strings.HasPrefix(w.Dir, strings.TrimSuffix(d, "/")+"/") {
			return w, nil
		}
	}
	return w, fmt.Errorf("wal archive dir %s is outside the backup directories (%s): choose one inside them", w.Dir, strings.Join(b.BackupDirs, ", "))
}

// openArchiveKeys loads the archive key the control plane sent last, so
// archiving runs while the control plane is down.
func (a *Agent) openArchiveKeys() error {
	ks, err := walarchive.OpenKeyStore(a.cfg.StateDir)
	if err != nil {
		return err
	}
	a.archiveKeys = ks
	return nil
}

// runArchiver runs the WAL archiver once the node has an identity (its
// node ID names the archive's directory), until ctx ends.
func (a *Agent) runArchiver(ctx context.Context, hc *health) {
	w := a.cfg.WAL
	if !w.Archive || hc.docker == nil {
		return
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for a.identity() == nil {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
	id := a.identity()
	store, err := backupstore.NewDir(backupstore.DirConfig{Root: w.Dir})
	if err == nil {
		var arch *walarchive.Archiver
		arch, err = walarchive.New(walarchive.Config{Docker: hc.docker, Node: id.Name, Store: store, Prefix: "wal/" + id.NodeID + "/",
			Destination: &forlockv1.BackupDestination{Kind: &forlockv1.BackupDestination_Dir{Dir: w.Dir}},
			Keys:        a.archiveKeys, StateDir: a.cfg.StateDir, Slot: w.Slot, ShipInterval: w.ShipInterval, Logger: a.log.With("part", "wal_archive")})
		if err == nil {
			a.archiver.Store(arch)
			go a.reportWal(ctx, arch)
			_ = arch.Run(ctx)
			return
		}
	}
	a.log.Error("WAL archiving cannot start", "error", err)
}

// reportWal sends a WalReport whenever the archive changes, at most every
// walReportEvery, on the current session (none: the next ServerHello
// sends one).
func (a *Agent) reportWal(ctx context.Context, arch *walarchive.Archiver) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-arch.Changed():
		}
		a.sendWalReport()
		select {
		case <-ctx.Done():
			return
		case <-time.After(walReportEvery):
		}
	}
}

// sendWalReport queues the archive's report on the session's outbox.
func (a *Agent) sendWalReport() {
	arch, ob := a.archiver.Load(), a.walOutbox.Load()
	if arch == nil || ob == nil {
		return
	}
	ob.TrySend(&forlockv1.ConnectRequest{Msg: &forlockv1.ConnectRequest_WalReport{WalReport: arch.Report()}})
}

// archiveKey keeps a key the control plane sent.
func (a *Agent) archiveKey(k *forlockv1.ArchiveKey) {
	if err := a.archiveKeys.Set(k); err != nil {
		a.log.Error("cannot keep the WAL archive key", "key_id", k.GetKeyId(), "error", err)
	}
}

// noteBaseBackup tells the archiver of a physical base backup.
func (a *Agent) noteBaseBackup(pos dbsource.BasePosition) {
	arch := a.archiver.Load()
	if arch == nil {
		return
	}
	lsn, err := walarchive.ParseLSN(pos.StartLSN)
	if err == nil {
		err = arch.NoteBaseBackup(pos.Timeline, lsn)
	}
	if err != nil {
		a.log.Warn("cannot record the base backup for the WAL archive", "error", err)
	}
}

// walCheck is the wal_archive health check.
func (a *Agent) walCheck() checks.Check {
	return checks.WalArchive{Read: func() (checks.WalState, bool) {
		arch := a.archiver.Load()
		if arch == nil {
			return checks.WalState{}, false
		}
		if _, err := a.archiveKeys.Current(); errors.Is(err, walarchive.ErrNoKey) {
			return checks.WalState{}, false
		}
		return arch.Health(), true
	}}
}

// deleteWAL is the WAL part of a delete_backup task.
func (a *Agent) deleteWAL(ctx context.Context, ranges []*forlockv1.WalRange) (int, error) {
	arch, id := a.archiver.Load(), a.identity()
	if arch == nil || id == nil {
		return 0, errors.New("WAL archiving is not running on this agent")
	}
	return arch.Delete(ctx, id.NodeID, ranges)
}
