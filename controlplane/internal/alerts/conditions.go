package alerts

import (
	"fmt"
	"math"
	"net/netip"
	"strings"
	"time"

	"github.com/forlock/fleet/controlplane/internal/registry"
	"github.com/forlock/fleet/controlplane/internal/store"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// maxChecksPerNode bounds what one node's checks can raise: check names
// and subjects come from the agent.
const maxChecksPerNode = 24

// forDurations is how long a state condition must hold before it fires:
// the same as deploy/prometheus/forlock-rules.yml's, so both show the same
// alerts. Numbers that swing with load (disk, memory, CPU, API latency,
// connections) must hold for 5 minutes, so a burst pages nobody; a node
// must stay unreachable (already three missed heartbeats) for a minute and
// the WAL archive behind for two. Everything else fires at the first
// evaluation that sees it: a CRITICAL check already is a verdict (Redis
// paused must alert within two heartbeat intervals), and certificate and
// backup conditions do not flap.
var forDurations = map[string]time.Duration{
	NodeUnreachable: time.Minute, WALArchiveBehind: 2 * time.Minute,
	DiskSpaceLow: 5 * time.Minute, MemoryHigh: 5 * time.Minute, CPUHigh: 5 * time.Minute, APILatencyHigh: 5 * time.Minute,
	DBConnectionsHigh: 5 * time.Minute,
}

// pct formats a share as a percentage for a summary.
func pct(v float64) string { return fmt.Sprintf("%.1f%%", v*100) }

// nodeConditions returns what holds for one node now.
func nodeConditions(s registry.Sample, t Thresholds, now time.Time) []Alert {
	var out []Alert
	add := func(name, severity string, labels map[string]string, summary string) {
		out = append(out, newAlert(name, severity, s.ID, s.Name, labels, summary))
	}
	node := clean(s.Name)
	if s.State == store.StateUnreachable || s.State == store.StateOffline {
		add(NodeUnreachable, Critical, nil, fmt.Sprintf("node %s is %s: no heartbeat from its agent", node, s.State))
	}
	checks := s.Health.GetChecks()
	if s.Archive != nil {
		checks = append(checks[:len(checks):len(checks)], s.Archive)
	}
	seen := map[string]bool{}
	var conns, maxConns float64
	for _, c := range checks {
		name := clean(c.GetName())
		if name == "" || seen[name] {
			continue
		}
		if len(seen) == maxChecksPerNode {
			break
		}
		seen[name] = true
		if c.GetStatus() == forlockv1.CheckStatus_CHECK_STATUS_CRITICAL {
			// The check's message is the agent's free text: it is not copied.
			add(CheckCritical, Critical, map[string]string{"check": name}, fmt.Sprintf("check %s of node %s is CRITICAL", name, node))
		}
		for _, m := range c.GetMeasurements() {
			v := m.GetValue()
			if math.IsNaN(v) || math.IsInf(v, 0) {
				continue
			}
			switch {
			case m.GetName() == "free_ratio" && (name == "disk" || strings.HasPrefix(name, "disk/")):
				if v < t.DiskFreeRatio {
					path := clean(m.GetSubject())
					add(DiskSpaceLow, Critical, map[string]string{"check": name, "path": path},
						fmt.Sprintf("node %s: %s free on %s (alert below %s)", node, pct(v), path, pct(t.DiskFreeRatio)))
				}
			case m.GetName() == "used_ratio" && name == "memory":
				if v > t.MemoryUsedRatio {
					add(MemoryHigh, Critical, nil, fmt.Sprintf("node %s: memory %s used (alert above %s)", node, pct(v), pct(t.MemoryUsedRatio)))
				}
			case m.GetName() == "used_ratio" && name == "cpu":
				if v > t.CPUUsedRatio {
					add(CPUHigh, Critical, nil, fmt.Sprintf("node %s: CPU %s used (alert above %s)", node, pct(v), pct(t.CPUUsedRatio)))
				}
			case m.GetName() == "p95_seconds" && name == "api":
				if v > t.APIP95Seconds {
					add(APILatencyHigh, Critical, nil, fmt.Sprintf("node %s: API p95 response time %.3fs (alert above %gs)", node, v, t.APIP95Seconds))
				}
			case m.GetName() == "connections" && name == "postgres":
				conns = v
			case m.GetName() == "max_connections" && name == "postgres":
				maxConns = v
			case m.GetName() == "failed_logins_per_minute" && name == "logins":
				// Only an address is a label: a subject that is not one is dropped.
				addr, err := netip.ParseAddr(m.GetSubject())
				if err == nil && v > t.FailedLoginsPerMinute {
					add(FailedLogins, Critical, map[string]string{"address": addr.String()},
						fmt.Sprintf("node %s: %.0f failed logins a minute from %s (alert above %g)", node, v, addr, t.FailedLoginsPerMinute))
				}
			}
		}
	}
	if maxConns > 0 && conns/maxConns > t.DBConnectionsRatio {
		add(DBConnectionsHigh, Critical, nil, fmt.Sprintf("node %s: %.0f of %.0f PostgreSQL connections in use (alert above %s)",
			node, conns, maxConns, pct(t.DBConnectionsRatio)))
	}
	if na := s.Health.GetCertificate().GetNotAfter(); na != nil {
		left := na.AsTime().Sub(now)
		sev := ""
		switch {
		case left < t.CertificateCritical:
			sev = Critical
		case left < t.CertificateWarning:
			sev = Warning
		}
		if sev != "" {
			add(CertificateExpiring, sev, nil, fmt.Sprintf("node %s: the certificate nginx serves expires %s (in %s)",
				node, na.AsTime().UTC().Format(time.RFC3339), left.Truncate(time.Minute)))
		}
	}
	return out
}

// backupConditions returns a node's backup age and WAL archive alerts.
// scheduled says the node must have a backup even if it never had one;
// newest is when its newest available backup was made and walEnd the end
// of its newest archived WAL (zero: none).
func backupConditions(s registry.Sample, t Thresholds, now time.Time, scheduled bool, newest time.Time, walEnd time.Time) []Alert {
	var out []Alert
	node := clean(s.Name)
	switch {
	case !newest.IsZero() && now.Sub(newest) > t.BackupMaxAge:
		out = append(out, newAlert(BackupTooOld, Warning, s.ID, s.Name, nil,
			fmt.Sprintf("node %s: newest backup is from %s, older than %s", node, newest.UTC().Format(time.RFC3339), t.BackupMaxAge)))
	case newest.IsZero() && scheduled:
		out = append(out, newAlert(BackupTooOld, Warning, s.ID, s.Name, nil,
			fmt.Sprintf("node %s: a backup schedule matches it but it has no available backup", node)))
	}
	if s.Archive != nil && !walEnd.IsZero() && now.Sub(walEnd) > t.WALArchiveMaxLag {
		out = append(out, newAlert(WALArchiveBehind, Warning, s.ID, s.Name, nil,
			fmt.Sprintf("node %s: newest archived WAL ends %s, more than %s ago", node, walEnd.UTC().Format(time.RFC3339), t.WALArchiveMaxLag)))
	}
	return out
}
