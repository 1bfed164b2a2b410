package snapshot

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/forlock/fleet/internal/atomicfile"
	"github.com/forlock/fleet/internal/keys"
)

// DefaultKeep is how many scheduled snapshots are kept by default.
const DefaultKeep = 7

// Schedule is when the control plane saves snapshots by itself, where, and
// how many it keeps. The zero Schedule (no Cron) saves none.
type Schedule struct {
	// Cron is five fields in UTC, or @daily, @every 6h...; "" is off.
	Cron string
	// Dir receives the snapshots, named FileName(time).
	Dir string
	// Keep is how many scheduled snapshots stay in Dir; older ones of this
	// name pattern are deleted after each save. At least 1.
	Keep int
	// PassphraseFile holds the passphrase (mode 0600); it is read at every
	// save, so it can be replaced without a restart.
	PassphraseFile string

	when cron.Schedule
}

// Check validates s and parses its cron expression.
func (s *Schedule) Check() error {
	if s.Cron == "" {
		return nil
	}
	when, err := cron.ParseStandard(s.Cron)
	if err != nil || strings.HasPrefix(s.Cron, "TZ=") || strings.HasPrefix(s.Cron, "CRON_TZ=") {
		return fmt.Errorf("snapshots schedule %q: give five fields in UTC, e.g. \"30 1 * * *\", or @daily, @every 6h", s.Cron)
	}
	s.when = when
	switch {
	case s.Dir == "" || !filepath.IsAbs(s.Dir):
		return errors.New("snapshots dir: give an absolute directory for scheduled snapshots (off the data dir's disk, ideally another machine's mount)")
	case s.PassphraseFile == "":
		return errors.New("snapshots passphrase_file: scheduled snapshots are encrypted to the passphrase in this file (mode 0600)")
	case s.Keep < 1:
		return fmt.Errorf("snapshots keep %d: keep at least 1", s.Keep)
	}
	return nil
}

// RunSchedule saves a snapshot at every time of sched until ctx ends. A
// failed save is logged and tried again at the next time.
func (s *Saver) RunSchedule(ctx context.Context, sched Schedule, log *slog.Logger) error {
	if sched.Cron == "" {
		return nil
	}
	if sched.when == nil {
		if err := sched.Check(); err != nil {
			return err
		}
	}
	for {
		next := sched.when.Next(s.cfg.Now().UTC())
		t := time.NewTimer(time.Until(next))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		path, res, err := s.SaveScheduled(ctx, sched)
		if err != nil {
			log.Error("scheduled control-plane snapshot failed; next try at the next scheduled time", "dir", sched.Dir, "err", err)
			continue
		}
		log.Info("scheduled control-plane snapshot saved", "path", path, "bytes", res.Size, "sha256", res.SHA256)
	}
}

// SaveScheduled saves one snapshot into sched.Dir (atomically, mode 0600)
// and deletes the oldest scheduled snapshots beyond sched.Keep.
func (s *Saver) SaveScheduled(ctx context.Context, sched Schedule) (string, Result, error) {
	pass, err := keys.ReadPassphraseFile(sched.PassphraseFile)
	if err != nil {
		return "", Result{}, err
	}
	w, err := keys.NewPassphrase(pass)
	if err != nil {
		return "", Result{}, err
	}
	if err := os.MkdirAll(sched.Dir, 0o700); err != nil {
		return "", Result{}, fmt.Errorf("snapshots dir: %w", err)
	}
	path := filepath.Join(sched.Dir, FileName(s.cfg.Now()))
	f, err := atomicfile.Create(path, 0o600)
	if err != nil {
		return "", Result{}, fmt.Errorf("snapshot %s: %w", path, err)
	}
	defer f.Abort() //nolint:errcheck // no-op after Commit
	res, err := s.Save(ctx, w, f)
	if err != nil {
		return "", Result{}, err
	}
	if err := f.Commit(); err != nil {
		return "", Result{}, fmt.Errorf("snapshot %s: %w", path, err)
	}
	return path, res, prune(sched.Dir, sched.Keep)
}

// prune deletes the oldest files named like scheduled snapshots in dir
// beyond keep; FileName sorts by time.
func prune(dir string, keep int) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("snapshots dir: %w", err)
	}
	var names []string
	for _, e := range ents {
		n := e.Name()
		if e.Type().IsRegular() && strings.HasPrefix(n, "controlplane-") && strings.HasSuffix(n, ".snap") {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	for len(names) > keep {
		if err := os.Remove(filepath.Join(dir, names[0])); err != nil {
			return fmt.Errorf("snapshots retention: %w", err)
		}
		names = names[1:]
	}
	return nil
}
