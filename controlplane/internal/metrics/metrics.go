// Package metrics is the control plane's Prometheus metrics: counters the
// control plane bumps as things happen (jobs, tasks, refused credentials,
// store commits, gRPC calls), a collector that reads the fleet's state from
// the registry and the store at scrape time (so a heartbeat costs nothing),
// and the HTTP listener that serves them. docs/operations.md ("Metrics")
// lists every metric; later work builds alerting rules on these names, so
// a rename is a breaking change.
package metrics

import (
	"strings"
	"time"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics holds the registry /metrics serves and the counters fed by the
// control plane. Every method is safe on a nil *Metrics (metrics off).
type Metrics struct {
	Registry *prometheus.Registry
	// GRPC is the go-grpc-middleware provider: grpc_server_* metrics.
	GRPC *grpcprom.ServerMetrics

	jobs, tasks  *prometheus.CounterVec
	taskDuration *prometheus.HistogramVec
	enrollFailed *prometheus.CounterVec
	authFailed   *prometheus.CounterVec
	commit       prometheus.Histogram
	notified     *prometheus.CounterVec
	notifyQueue  *prometheus.GaugeVec
}

// New makes the metrics and registers them with the Go runtime and process
// collectors.
func New() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		GRPC:     grpcprom.NewServerMetrics(grpcprom.WithServerHandlingTimeHistogram()),
		jobs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "forlock_jobs_total",
			Help: "Jobs that ended since the control plane started, by kind and outcome (succeeded, partially_failed, failed, cancelled)."},
			[]string{"kind", "outcome"}),
		tasks: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "forlock_tasks_total",
			Help: "Tasks that ended since the control plane started, by job kind and outcome (succeeded, failed, cancelled, interrupted, skipped, rolled_back, unknown)."},
			[]string{"kind", "outcome"}),
		taskDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "forlock_task_duration_seconds",
			Help:    "Time from a task's start on its node to its end, by job kind; tasks that never started are not observed.",
			Buckets: []float64{1, 5, 15, 60, 300, 900, 1800, 3600, 3 * 3600, 12 * 3600}},
			[]string{"kind"}),
		enrollFailed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "forlock_enrollment_failures_total",
			Help: "Enrollments refused since the control plane started, by reason."}, []string{"reason"}),
		authFailed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "forlock_auth_failures_total",
			Help: "Refused credentials since the control plane started, by credential (agent_certificate, bearer_token, join_token) and reason (refused, blocked)."},
			[]string{"credential", "reason"}),
		commit: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "forlock_store_commit_duration_seconds",
			Help:    "Time bbolt took to commit a write transaction (page writes and fsync), after its changes were made.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}}),
		notified: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "forlock_notifications_total",
			Help: "Alert notifications since the control plane started, by receiver kind (alertmanager, webhook) and outcome (sent, failed: an attempt to retry, dropped: refused for good, overflow: the queue cap dropped it, resent: a firing alert posted to Alertmanager again)."},
			[]string{"receiver_kind", "outcome"}),
		notifyQueue: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "forlock_notification_queue",
			Help: "Alert notifications stored and not yet taken by their receivers, by receiver kind."}, []string{"receiver_kind"}),
	}
	m.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.GRPC, m.jobs, m.tasks, m.taskDuration, m.enrollFailed, m.authFailed, m.commit, m.notified, m.notifyQueue)
	return m
}

// word turns an enum name such as TASK_STATE_ROLLED_BACK into rolled_back.
func word(enum, prefix string) string {
	return strings.ToLower(strings.TrimPrefix(enum, prefix))
}

// JobEnded counts a job that reached a final state, e.g. JOB_STATE_FAILED.
func (m *Metrics) JobEnded(kind, state string) {
	if m == nil {
		return
	}
	m.jobs.WithLabelValues(kind, word(state, "JOB_STATE_")).Inc()
}

// TaskEnded counts a task that reached a final state, e.g.
// TASK_STATE_SUCCEEDED, and observes its duration when it ran (ran > 0).
func (m *Metrics) TaskEnded(kind, state string, ran time.Duration) {
	if m == nil {
		return
	}
	m.tasks.WithLabelValues(kind, word(state, "TASK_STATE_")).Inc()
	if ran > 0 {
		m.taskDuration.WithLabelValues(kind).Observe(ran.Seconds())
	}
}

// EnrollFailed counts a refused enrollment; reason is one of a fixed set
// (enroll.Refusal's names, token_malformed, token_unknown, invalid_request).
func (m *Metrics) EnrollFailed(reason string) {
	if m == nil {
		return
	}
	m.enrollFailed.WithLabelValues(reason).Inc()
}

// AuthFailed counts a refused credential.
func (m *Metrics) AuthFailed(credential, reason string) {
	if m == nil {
		return
	}
	m.authFailed.WithLabelValues(credential, reason).Inc()
}

// ObserveCommit records one store commit's duration.
func (m *Metrics) ObserveCommit(d time.Duration) {
	if m == nil {
		return
	}
	m.commit.Observe(d.Seconds())
}

// Notifications counts c alert notifications of an outcome (package
// notify).
func (m *Metrics) Notifications(kind, outcome string, c int) {
	if m == nil {
		return
	}
	m.notified.WithLabelValues(kind, outcome).Add(float64(c))
}

// NotificationQueue sets the notifications waiting for receivers of a kind.
func (m *Metrics) NotificationQueue(kind string, n int) {
	if m == nil {
		return
	}
	m.notifyQueue.WithLabelValues(kind).Set(float64(n))
}
