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
	// Default: the first backup directory, unless Bucket is set.
	Dir string
	// Bucket, instead of Dir, sends the WAL to a bucket of the agent's S3
	// server (BackupConfig's S3 settings), under <Prefix>/wal/<node-id>/.
	Bucket, Prefix string
	// ShipInterval is how often new WAL is looked for and complete
	// segments shipped (default 1s).
	ShipInterval time.Duration
	// PartialInterval is how often at most the growing partial segment is
	// shipped again: the RPO's main term. Default ShipInterval to a
	// directory, DefaultS3PartialInterval to S3.
	PartialInterval time.Duration
	// Slot is the replication slot (default forlock_archive).
	Slot string
}

// DefaultS3PartialInterval is the partial segment's ship interval to S3.
// Each ship is one PUT request of the segment's flushed prefix, replacing
// the last: every 10 s a busy node makes at most 8,640 PUTs a day
// (~$0.04 a day at AWS's $0.005 per 1,000), against 86,400 (~$13 a month
// per node) every second, for an RPO of ~10 s, well inside 60 s. An idle
// node makes none: an unchanged partial is not shipped again.
const DefaultS3PartialInterval = 10 * time.Second

// walReportEvery bounds how often WalReports are sent on change.
const walReportEvery = 2 * time.Second

func (w WalConfig) validate(b BackupConfig) (WalConfig, error) {
	if w.ShipInterval == 0 {
		w.ShipInterval = walarchive.DefaultShipInterval
	}
	if w.ShipInterval < 100*time.Millisecond || w.ShipInterval > time.Hour {
		return w, fmt.Errorf("wal ship interval %s: between 100ms and 1h", w.ShipInterval)
	}
	if w.Slot == "" {
		w.Slot = walarchive.DefaultSlot
	}
	if w.Bucket != "" {
		return w.validateS3(b)
	}
	if w.Prefix != "" {
		return w, errors.New("wal archive prefix is set without wal_archive_bucket: it is the S3 key prefix; set the bucket or remove the prefix")
	}
	if w.PartialInterval == 0 {
		w.PartialInterval = w.ShipInterval
	}
	if err := w.checkPartialInterval(); err != nil {
		return w, err
	}
	if w.Dir == "" && len(b.BackupDirs) > 0 {
		w.Dir = b.BackupDirs[0]
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

func (w WalConfig) validateS3(b BackupConfig) (WalConfig, error) {
	switch {
	case w.Dir != "":
		return w, errors.New("wal_archive_dir and wal_archive_bucket are both set: the WAL goes to one archive, choose one")
	case b.S3Endpoint == "":
		return w, fmt.Errorf("wal archive bucket %s: no S3 server is configured: set s3_endpoint, s3_access_key_file and s3_secret_key_file", w.Bucket)
	}
	if err := backupstore.ValidateBucket(w.Bucket); err != nil {
		return w, fmt.Errorf("wal archive %w", err)
	}
	w.Prefix = strings.Trim(w.Prefix, "/")
	if w.Prefix != "" {
		if err := backupstore.ValidateName(w.Prefix); err != nil {
			return w, fmt.Errorf("wal archive prefix: %w", err)
		}
	}
	if w.PartialInterval == 0 {
		w.PartialInterval = max(DefaultS3PartialInterval, w.ShipInterval)
	}
	return w, w.checkPartialInterval()
}

func (w WalConfig) checkPartialInterval() error {
	if w.PartialInterval < w.ShipInterval || w.PartialInterval > time.Hour {
		return fmt.Errorf("wal partial interval %s: between the ship interval (%s) and 1h", w.PartialInterval, w.ShipInterval)
	}
	return nil
}

// store opens the archive's destination and names it for WalReports.
func (w WalConfig) store(b BackupConfig) (backupstore.Lister, *forlockv1.BackupDestination, error) {
	if w.Bucket == "" {
		st, err := backupstore.NewDir(backupstore.DirConfig{Root: w.Dir})
		return st, &forlockv1.BackupDestination{Kind: &forlockv1.BackupDestination_Dir{Dir: w.Dir}}, err
	}
	st, err := b.s3().Open(w.Bucket, w.Prefix)
	return st, &forlockv1.BackupDestination{Kind: &forlockv1.BackupDestination_S3{S3: &forlockv1.S3Location{Bucket: w.Bucket, Prefix: w.Prefix}}}, err
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
	store, dest, err := w.store(a.cfg.Backup)
	if err == nil {
		var arch *walarchive.Archiver
		arch, err = walarchive.New(walarchive.Config{Docker: hc.docker, Node: id.Name, Store: store, Prefix: "wal/" + id.NodeID + "/",
			Destination: dest, Keys: a.archiveKeys, StateDir: a.cfg.StateDir, Slot: w.Slot,
			ShipInterval: w.ShipInterval, PartialInterval: w.PartialInterval, Logger: a.log.With("part", "wal_archive")})
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
	rep := arch.Report()
	sent := ob.TrySend(&forlockv1.ConnectRequest{Msg: &forlockv1.ConnectRequest_WalReport{WalReport: rep}})
	a.log.Debug("WAL report", "sent", sent, "streaming", rep.GetStreaming(), "gap", rep.GetGap(), "ranges", len(rep.GetRanges()))
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
