package controlplane

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/forlock/fleet/controlplane/internal/audit"
	"github.com/forlock/fleet/controlplane/internal/datadir"
)

// Audit log files in the data dir.
const (
	auditKeyFile         = datadir.AuditKey
	auditCheckpointsFile = datadir.AuditCheckpoints
)

// AuditConfig tunes the audit log.
type AuditConfig struct {
	// Sink, if set, is a JSON-lines file every record and checkpoint is
	// appended to, for a log shipper (syslog, a SIEM agent) to take off the
	// machine. Its checkpoints are also checked by audit verify.
	Sink string
	// Retention is how long records are kept; 0 keeps them all. Pruning
	// leaves a signed anchor, so verification still works.
	Retention time.Duration
	// RequireReason refuses destructive calls without a reason.
	RequireReason bool
	// FailureFlush is how often aggregated authentication failures are
	// written; default 10s (a minute's aggregate is written in the first
	// flush after the minute ends).
	FailureFlush time.Duration
}

// openAudit loads (or makes) the audit key and wires the log to the store
// and its outputs.
func (s *Server) openAudit() error {
	key, err := audit.LoadOrCreateKey(filepath.Join(s.cfg.DataDir, auditKeyFile))
	if err != nil {
		return fmt.Errorf("audit key: %w", err)
	}
	head, err := s.store.AuditHead()
	if err != nil {
		return fmt.Errorf("audit log: %w", err)
	}
	s.auditOutside = []string{filepath.Join(s.cfg.DataDir, auditCheckpointsFile)}
	outputs := []audit.Output{&audit.File{Path: s.auditOutside[0]}}
	if p := s.cfg.Audit.Sink; p != "" {
		outputs = append(outputs, &audit.File{Path: p, Records: true})
		s.auditOutside = append(s.auditOutside, p)
	}
	l := audit.New(key, head, outputs...)
	l.OnOutputError = func(err error) { s.log.Error("audit output failed (the database keeps the record)", "err", err) }
	s.store.SetAuditLog(l)
	s.auditKey = key
	return nil
}

// runAuditRetention prunes old records daily.
func (s *Server) runAuditRetention(ctx context.Context) error {
	if s.cfg.Audit.Retention <= 0 {
		return nil
	}
	t := time.NewTicker(24 * time.Hour)
	defer t.Stop()
	for {
		n, err := s.store.PruneAudit(time.Now().Add(-s.cfg.Audit.Retention))
		switch {
		case err != nil:
			s.log.Error("audit retention failed", "err", err)
		case n > 0:
			s.log.Info("audit records pruned", "records", n, "retention", s.cfg.Audit.Retention.String())
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
