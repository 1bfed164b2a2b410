package metrics

import (
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/forlock/fleet/controlplane/internal/newest"
	"github.com/forlock/fleet/controlplane/internal/registry"
	"github.com/forlock/fleet/controlplane/internal/store"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// MaxChecksPerNode caps the check series of one node: check names come
// from the agent's configuration, and the series budget (docs/operations.md)
// must hold even for an agent that reports many.
const MaxChecksPerNode = 24

// Fleet is what the collector reads: the registry's live view and the store.
type Fleet interface {
	Samples() []registry.Sample
}

// Catalog is the part of the store the collector reads.
type Catalog interface {
	ScanRestorePoints(before string, fn func(*forlockv1.RestorePoint) bool) error
	WalNewestEnds() (map[string]time.Time, error)
	Path() string
}

var (
	descNodes     = prometheus.NewDesc("forlock_nodes", "Registered nodes by state (enrolled, online, unreachable, offline).", []string{"state"}, nil)
	descNodeState = prometheus.NewDesc("forlock_node_state", "1 for each node, labelled with its state (enrolled, online, unreachable, offline).",
		[]string{"node", "state"}, nil)
	descHeartbeatAge = prometheus.NewDesc("forlock_node_heartbeat_age_seconds",
		"Seconds since the node's last heartbeat; absent until its first heartbeat since the control plane started.", []string{"node"}, nil)
	descCheck = prometheus.NewDesc("forlock_node_check_status",
		"Status of a node's health check: 0 OK, 1 WARN, 2 CRITICAL, 3 UNKNOWN (could not be measured).", []string{"node", "check"}, nil)
	descDiskFree = prometheus.NewDesc("forlock_node_disk_free_ratio",
		"Free share of the file system holding the agent's state directory (0 to 1), from the last heartbeat.", []string{"node"}, nil)
	descMemUsed = prometheus.NewDesc("forlock_node_memory_used_ratio",
		"Share of the node's memory not available for new work (1 - MemAvailable/MemTotal), from the last heartbeat.", []string{"node"}, nil)
	descCertExpiry = prometheus.NewDesc("forlock_node_certificate_expiry_timestamp_seconds",
		"When the certificate the node's nginx serves expires (Unix time), from the last health report.", []string{"node"}, nil)
	descBackupLast = prometheus.NewDesc("forlock_backup_last_success_timestamp_seconds",
		"When the node's newest available backup artifact of this kind (postgres, redis, config) was made (Unix time).", []string{"node", "kind"}, nil)
	descBackupBytes = prometheus.NewDesc("forlock_backup_last_size_bytes",
		"Stored bytes of the node's newest restore point with an available artifact (the sum of its available artifacts).", []string{"node"}, nil)
	descWALEnd = prometheus.NewDesc("forlock_wal_archived_end_timestamp_seconds",
		"End time of the node's newest archived WAL in the WAL catalog (Unix time).", []string{"node"}, nil)
	descStoreSize = prometheus.NewDesc("forlock_store_size_bytes", "Size of the control plane's bbolt database file.", nil, nil)
	descScrapeErr = prometheus.NewDesc("forlock_collector_errors_total",
		"Store reads that failed while collecting, since start; the metrics they feed are missing from that scrape.", nil, nil)
)

var states = []store.State{store.StateEnrolled, store.StateOnline, store.StateUnreachable, store.StateOffline}

// collector computes the fleet's metrics at scrape time.
type collector struct {
	fleet   Fleet
	catalog Catalog
	log     *slog.Logger
	now     func() time.Time

	mu      sync.Mutex // one scrape at a time: the backup cache is shared
	backups newest.Backups
	errors  float64
}

// Watch registers the collector of the fleet's state.
func (m *Metrics) Watch(fleet Fleet, catalog Catalog, log *slog.Logger) {
	m.Registry.MustRegister(&collector{fleet: fleet, catalog: catalog, log: log, now: time.Now})
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descNodes, descNodeState, descHeartbeatAge, descCheck, descDiskFree, descMemUsed,
		descCertExpiry, descBackupLast, descBackupBytes, descWALEnd, descStoreSize, descScrapeErr} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	samples := c.fleet.Samples()
	names := make(map[string]string, len(samples))
	count := map[store.State]int{}
	for _, s := range samples {
		names[s.ID] = s.Name
		count[s.State]++
		collectNode(ch, s, now)
	}
	for _, st := range states {
		ch <- prometheus.MustNewConstMetric(descNodes, prometheus.GaugeValue, float64(count[st]), string(st))
	}
	if err := c.backups.Update(c.catalog, now); err != nil {
		c.fail("backup catalog", err)
	} else {
		collectBackups(ch, &c.backups, names)
	}
	if ends, err := c.catalog.WalNewestEnds(); err != nil {
		c.fail("WAL catalog", err)
	} else {
		for id, t := range ends {
			if name, ok := names[id]; ok {
				ch <- prometheus.MustNewConstMetric(descWALEnd, prometheus.GaugeValue, unix(t), name)
			}
		}
	}
	if fi, err := os.Stat(c.catalog.Path()); err != nil {
		c.fail("database file", err)
	} else {
		ch <- prometheus.MustNewConstMetric(descStoreSize, prometheus.GaugeValue, float64(fi.Size()))
	}
	ch <- prometheus.MustNewConstMetric(descScrapeErr, prometheus.CounterValue, c.errors)
}

func (c *collector) fail(what string, err error) {
	c.errors++
	c.log.Warn("metrics: reading "+what+" failed", "err", err)
}

func unix(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

// checkValue maps a check status to the metric's value; false for a status
// that is not set.
func checkValue(s forlockv1.CheckStatus) (float64, bool) {
	switch s {
	case forlockv1.CheckStatus_CHECK_STATUS_OK:
		return 0, true
	case forlockv1.CheckStatus_CHECK_STATUS_WARN:
		return 1, true
	case forlockv1.CheckStatus_CHECK_STATUS_CRITICAL:
		return 2, true
	case forlockv1.CheckStatus_CHECK_STATUS_UNKNOWN:
		return 3, true
	}
	return 0, false
}

// collectNode sends one node's series: at most 6 plus its checks.
func collectNode(ch chan<- prometheus.Metric, s registry.Sample, now time.Time) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, append([]string{s.Name}, labels...)...)
	}
	gauge(descNodeState, 1, string(s.State))
	if !s.LastHeartbeat.IsZero() {
		gauge(descHeartbeatAge, max(0, now.Sub(s.LastHeartbeat).Seconds()))
	}
	checks := s.Health.GetChecks()
	if s.Archive != nil {
		checks = append(checks[:len(checks):len(checks)], s.Archive)
	}
	seen := map[string]bool{}
	for _, c := range checks {
		v, ok := checkValue(c.GetStatus())
		if !ok || c.GetName() == "" || seen[c.GetName()] {
			continue // a duplicate name would make the scrape fail
		}
		if len(seen) == MaxChecksPerNode {
			break
		}
		seen[c.GetName()] = true
		gauge(descCheck, v, c.GetName())
	}
	if f := s.Facts; f.GetDiskTotalBytes() > 0 {
		gauge(descDiskFree, float64(f.GetDiskFreeBytes())/float64(f.GetDiskTotalBytes()))
	}
	if f := s.Facts; f.GetMemoryTotalBytes() > 0 {
		gauge(descMemUsed, 1-float64(f.GetMemoryAvailableBytes())/float64(f.GetMemoryTotalBytes()))
	}
	if na := s.Health.GetCertificate().GetNotAfter(); na != nil {
		gauge(descCertExpiry, unix(na.AsTime()))
	}
}

func collectBackups(ch chan<- prometheus.Metric, b *newest.Backups, names map[string]string) {
	for id, n := range b.Nodes() {
		name, ok := names[id]
		if !ok {
			continue // a removed node's backups stay in the catalog, not in the metrics
		}
		for kind, t := range n.Last {
			if kind == forlockv1.ArtifactKind_ARTIFACT_KIND_UNSPECIFIED {
				continue
			}
			ch <- prometheus.MustNewConstMetric(descBackupLast, prometheus.GaugeValue, unix(t), name, word(kind.String(), "ARTIFACT_KIND_"))
		}
		if !n.LatestAt.IsZero() {
			ch <- prometheus.MustNewConstMetric(descBackupBytes, prometheus.GaugeValue, float64(n.LatestBytes), name)
		}
	}
}

var descAlerts = prometheus.NewDesc("forlock_alerts_firing",
	"Alerts the control plane's built-in alerting holds firing, by name and severity.", []string{"alertname", "severity"}, nil)

// alertCollector reads the built-in alerting's firing set at scrape time.
type alertCollector struct {
	counts func() map[[2]string]int
}

// WatchAlerts registers forlock_alerts_firing; counts returns how many
// alerts fire by [name, severity].
func (m *Metrics) WatchAlerts(counts func() map[[2]string]int) {
	m.Registry.MustRegister(alertCollector{counts: counts})
}

func (c alertCollector) Describe(ch chan<- *prometheus.Desc) { ch <- descAlerts }

func (c alertCollector) Collect(ch chan<- prometheus.Metric) {
	for k, n := range c.counts() {
		ch <- prometheus.MustNewConstMetric(descAlerts, prometheus.GaugeValue, float64(n), k[0], k[1])
	}
}
