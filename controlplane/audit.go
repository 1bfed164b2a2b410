package controlplane

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/forlock/fleet/controlplane/internal/api"
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
	// VerifyInterval is how often the control plane verifies the chain
	// itself (ForlockAuditChainBroken, forlock_audit_chain_intact);
	// DefaultAuditVerifyInterval if zero.
	VerifyInterval time.Duration
}

// DefaultAuditVerifyInterval is how often the audit chain is verified.
const DefaultAuditVerifyInterval = time.Hour

// auditVerified is the last periodic verification of the audit chain.
type auditVerified struct {
	problem string // "" when intact
	records uint64
	at      time.Time
}

// auditState returns the last verification for the alerts: checked false
// before the first.
func (s *Server) auditState() (checked bool, problem string) {
	v := s.auditCheck.Load()
	if v == nil {
		return false, ""
	}
	return true, v.problem
}

// runAuditVerify verifies the audit chain at start and every interval;
// a broken chain is logged and alerts until a verification finds it whole.
func (s *Server) runAuditVerify(ctx context.Context) error {
	every := s.cfg.Audit.VerifyInterval
	if every <= 0 {
		every = DefaultAuditVerifyInterval
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		start := time.Now()
		rep, err := api.VerifyAuditLog(s.store, s.auditKey.Public(), s.auditOutside)
		switch {
		case err != nil:
			s.log.Warn("audit verification could not run; tried again at the next interval", "err", err)
		case !rep.OK():
			s.log.Error("the audit log's chain does not verify", "problem", rep.Problem, "bad_seq", rep.Bad, "records", rep.Records)
			s.auditCheck.Store(&auditVerified{problem: rep.Problem, records: rep.Records, at: start})
		default:
			s.log.Debug("audit chain verified", "records", rep.Records, "took", time.Since(start).String())
			s.auditCheck.Store(&auditVerified{records: rep.Records, at: start})
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
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
