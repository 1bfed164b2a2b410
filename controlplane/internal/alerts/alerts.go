// Package alerts is the control plane's built-in alerting, for fleets
// without Prometheus: it evaluates the conditions of
// deploy/prometheus/forlock-rules.yml (same names, same thresholds) over the
// registry's live view, the backup and WAL catalogs, the data disk and job
// outcomes, and keeps the set of firing alerts.
//
// Two kinds of condition:
//   - state conditions (a node unreachable, a CRITICAL check, a number over
//     its threshold, an old backup) are computed again at every evaluation
//     and resolve when they no longer hold;
//   - event conditions (a failed job, a failed backup or restore drill)
//     fire when the job engine reports the outcome and are latched in the
//     firing set until what resolves them happens: a later successful backup
//     or drill of the node, or job_alert_duration for a failed job.
//
// The firing set is written to the store on every transition and loaded at
// start, so a restart neither fires an alert again (it keeps its since) nor
// loses a resolve. What can go wrong after a restart: the registry knows no
// heartbeat yet, so every node looks silent. State alerts are therefore not
// resolved during a warm-up of two heartbeat intervals after start (agents
// reconnect and report within one); afterwards a condition that cleared
// while the control plane was down resolves at the next evaluation. Event
// alerts need no warm-up: what resolves them is itself an event.
//
// Transitions (firing, resolved) go to a Sink, which persists them before
// Notify returns and delivers them in the background (package notify).
// Summaries and labels are built from names and numbers only, never from the
// free text of an agent's check message, which may quote anything the
// check saw.
package alerts

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"maps"
	"slices"
	"strings"
	"time"
)

// Severities.
const (
	Critical = "critical"
	Warning  = "warning"
)

// The alert names: the same as deploy/prometheus/forlock-rules.yml's.
const (
	NodeUnreachable      = "ForlockNodeUnreachable"
	CheckCritical        = "ForlockCheckCritical"
	DiskSpaceLow         = "ForlockDiskSpaceLow"
	MemoryHigh           = "ForlockMemoryHigh"
	CPUHigh              = "ForlockCPUHigh"
	APILatencyHigh       = "ForlockAPILatencyHigh"
	DBConnectionsHigh    = "ForlockDBConnectionsHigh"
	FailedLogins         = "ForlockFailedLogins"
	CertificateExpiring  = "ForlockCertificateExpiring"
	BackupFailed         = "ForlockBackupFailed"
	BackupTooOld         = "ForlockBackupTooOld"
	WALArchiveBehind     = "ForlockWALArchiveBehind"
	RestoreDrillFailed   = "ForlockRestoreDrillFailed"
	JobFailed            = "ForlockJobFailed"
	ControlPlaneDiskFull = "ForlockControlPlaneDiskFull"
	AuditChainBroken     = "ForlockAuditChainBroken"
)

const (
	runbookBase = "https://github.com/forlock/fleet/blob/main/docs/operations.md#"
	// Bounds of what an agent's values make of a label and a summary.
	maxLabelValue = 200
	maxSummary    = 400
)

// Names lists every alert this package raises, for docs and tests.
var Names = []string{NodeUnreachable, CheckCritical, DiskSpaceLow, MemoryHigh, CPUHigh, APILatencyHigh,
	DBConnectionsHigh, FailedLogins, CertificateExpiring, BackupFailed, BackupTooOld, WALArchiveBehind,
	RestoreDrillFailed, JobFailed, ControlPlaneDiskFull, AuditChainBroken}

// RunbookURL is where docs/operations.md says what an alert means and what
// to do: the anchor alert-<lowercase name>.
func RunbookURL(name string) string { return runbookBase + "alert-" + strings.ToLower(name) }

// Alert is one alert, firing or resolved.
type Alert struct {
	Name     string            `json:"name"`
	Severity string            `json:"severity"`
	Node     string            `json:"node,omitempty"` // the node's name; empty for the control plane
	Labels   map[string]string `json:"labels,omitempty"`
	Summary  string            `json:"summary"`
	// RunbookURL points into docs/operations.md.
	RunbookURL string    `json:"runbook_url"`
	Since      time.Time `json:"since"`
	// Fingerprint is the hash of the name, node and labels: the alert's
	// identity across evaluations and restarts.
	Fingerprint string `json:"fingerprint"`
	// NodeID ties a node's alert to the node across a rename; not shown.
	NodeID string `json:"node_id,omitempty"`
}

// Transition is an alert that started firing or resolved.
type Transition struct {
	Alert    Alert
	Resolved bool
	At       time.Time
}

// Sink delivers notifications (package notify).
type Sink interface {
	// Notify is given the transitions of one evaluation, firing and resolved; it must persist them before
	// returning (the delivery goes on in the background with retries).
	Notify(ctx context.Context, ts []Transition) error
	// Firing is given the whole firing set after each evaluation (Alertmanager wants firing alerts resent).
	Firing(alerts []Alert)
}

// fingerprint hashes an alert's name, node and labels in a fixed order.
func fingerprint(name, node string, labels map[string]string) string {
	h := sha256.New()
	h.Write([]byte(name))
	h.Write([]byte{0})
	h.Write([]byte(node))
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		h.Write([]byte{0})
		h.Write([]byte(k))
		h.Write([]byte{1})
		h.Write([]byte(labels[k]))
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// newAlert fills in an alert's runbook and fingerprint.
func newAlert(name, severity, nodeID, node string, labels map[string]string, summary string) Alert {
	return Alert{Name: name, Severity: severity, NodeID: nodeID, Node: node, Labels: labels, Summary: clip(summary, maxSummary),
		RunbookURL: RunbookURL(name), Fingerprint: fingerprint(name, node, labels)}
}

// clean makes a value an agent reported fit for a label or a summary:
// printable, bounded. It does not make free text safe; callers only pass
// names, paths and addresses.
func clean(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, s)
	return clip(s, maxLabelValue)
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8Start(s[n]) {
		n--
	}
	return s[:n] + "…"
}

func utf8Start(b byte) bool { return b&0xC0 != 0x80 }
