package checks

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/forlock/fleet/agent/internal/hostinfo"
)

// cpuMinSample is the shortest interval the CPU check measures over:
// shorter ones hold too few clock ticks (100 a second per CPU) to mean
// much.
const cpuMinSample = 200 * time.Millisecond

// CPU checks the host's CPU use: the share of CPU time not idle between
// its previous run and this one, so every heartbeat judges the whole
// interval since the last, not an instant. The first run, having no
// previous reading, reads twice 200 ms apart rather than report nothing;
// so does a run that follows the previous one too closely. Use one CPU
// (NewCPU) for the life of the suite: it keeps the last reading.
type CPU struct {
	read func() (hostinfo.CPUTimes, error)

	mu     sync.Mutex // held for a whole run, so runs take turns
	last   hostinfo.CPUTimes
	lastAt time.Time // zero: no reading yet
}

// NewCPU returns a CPU check that reads the host's CPU times with read.
func NewCPU(read func() (hostinfo.CPUTimes, error)) *CPU { return &CPU{read: read} }

// Name is "cpu".
func (*CPU) Name() string { return "cpu" }

// Run reads the CPU times and judges the use since the last reading.
func (c *CPU) Run(ctx context.Context) Result {
	c.mu.Lock()
	defer c.mu.Unlock()
	unknown := func(format string, args ...any) Result {
		return Result{Name: c.Name(), Status: Unknown, Summary: fmt.Sprintf(format, args...)}
	}
	if c.lastAt.IsZero() {
		t, err := c.read()
		if err != nil {
			return unknown("cannot read the CPU times: %v", err)
		}
		c.last, c.lastAt = t, time.Now()
	}
	if wait := cpuMinSample - time.Since(c.lastAt); wait > 0 {
		tm := time.NewTimer(wait)
		defer tm.Stop()
		select {
		case <-tm.C:
		case <-ctx.Done():
			return unknown("no time left to sample the CPU times: %v", ctx.Err())
		}
	}
	cur, err := c.read()
	if err != nil {
		return unknown("cannot read the CPU times: %v", err)
	}
	now := time.Now()
	prev, since := c.last, now.Sub(c.lastAt)
	c.last, c.lastAt = cur, now
	if cur.Total < prev.Total {
		return unknown("the CPU times went backwards (%d clock ticks, then %d)", prev.Total, cur.Total)
	}
	total := cur.Total - prev.Total
	// iowait, part of Idle, may go backwards on some kernels: count no
	// idle time rather than a negative amount.
	idle := uint64(0)
	if cur.Idle > prev.Idle {
		idle = min(cur.Idle-prev.Idle, total)
	}
	return EvaluateCPU(total-idle, total, since)
}
