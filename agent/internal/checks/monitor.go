package checks

import (
	"context"
	"sync/atomic"
	"time"

	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// Monitor runs a Suite in the background, once per interval, and keeps the
// latest report for the heartbeats: a heartbeat never waits for checks, it
// carries the last completed report.
type Monitor struct {
	suite    *Suite
	interval atomic.Int64 // nanoseconds
	latest   atomic.Pointer[forlockv1.HealthReport]
	kick     chan struct{}
	changed  chan struct{}
}

// NewMonitor returns a Monitor of suite that runs every interval (at least
// one second).
func NewMonitor(suite *Suite, interval time.Duration) *Monitor {
	m := &Monitor{suite: suite, kick: make(chan struct{}, 1), changed: make(chan struct{}, 1)}
	m.interval.Store(int64(max(interval, time.Second)))
	return m
}

// SetInterval changes the interval (at least one second), e.g. to the
// heartbeat interval the control plane asked for; the next run is timed by
// the new one.
func (m *Monitor) SetInterval(d time.Duration) {
	if old := m.interval.Swap(int64(max(d, time.Second))); old != int64(max(d, time.Second)) {
		select {
		case m.kick <- struct{}{}:
		default:
		}
	}
}

// Latest returns the latest completed report, nil before the first.
func (m *Monitor) Latest() *forlockv1.HealthReport { return m.latest.Load() }

// Changed receives a value when a published report's verdicts differ from
// the previous report's (a check changed status, appeared or went away):
// the session sends a heartbeat at once instead of at the next tick, so an
// alert does not wait a heartbeat interval.
func (m *Monitor) Changed() <-chan struct{} { return m.changed }

// Publish makes h the latest report unless a newer one is there; the
// health_check task publishes its report too.
func (m *Monitor) Publish(h *forlockv1.HealthReport) {
	for {
		cur := m.latest.Load()
		if cur != nil && cur.GetCheckedAt().AsTime().After(h.GetCheckedAt().AsTime()) {
			return
		}
		if m.latest.CompareAndSwap(cur, h) {
			if cur != nil && !sameVerdicts(cur, h) {
				select {
				case m.changed <- struct{}{}:
				default: // one pending signal is enough
				}
			}
			return
		}
	}
}

// sameVerdicts reports whether two reports have the same checks with the
// same statuses, in the same order.
func sameVerdicts(a, b *forlockv1.HealthReport) bool {
	ac, bc := a.GetChecks(), b.GetChecks()
	if len(ac) != len(bc) {
		return false
	}
	for i := range ac {
		if ac[i].GetName() != bc[i].GetName() || ac[i].GetStatus() != bc[i].GetStatus() {
			return false
		}
	}
	return true
}

// Run runs the suite at once and then every interval, counted from the
// start of each run, until ctx ends; it then returns nil.
func (m *Monitor) Run(ctx context.Context) error {
	timer := time.NewTimer(0)
	defer timer.Stop()
	var last time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-m.kick:
			timer.Reset(max(time.Until(last.Add(time.Duration(m.interval.Load()))), 0))
			continue
		case <-timer.C:
		}
		last = time.Now()
		rep := m.suite.Run(ctx)
		if ctx.Err() != nil {
			return nil
		}
		m.Publish(rep.Proto())
		timer.Reset(max(time.Until(last.Add(time.Duration(m.interval.Load()))), 0))
	}
}
