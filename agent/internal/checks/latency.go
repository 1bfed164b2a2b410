package checks

import (
	"math"
	"slices"
	"sync"
	"time"
)

// DefaultLatencyWindow is how many recent API response times the p95 is
// taken over: with three endpoints per run and a run per 10 s heartbeat,
// about the last minute and a half.
const DefaultLatencyWindow = 30

// Latencies is a ring of the most recent response times. It is safe for
// concurrent use; the zero value is not: use NewLatencies.
type Latencies struct {
	mu   sync.Mutex
	buf  []time.Duration
	next int
	n    int
}

// NewLatencies returns an empty ring of size samples (at least 1).
func NewLatencies(size int) *Latencies {
	return &Latencies{buf: make([]time.Duration, max(size, 1))}
}

// Add records one response time, replacing the oldest when full.
func (l *Latencies) Add(d time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf[l.next] = d
	l.next = (l.next + 1) % len(l.buf)
	l.n = min(l.n+1, len(l.buf))
}

// P95 returns the 95th percentile of the recorded times and how many there
// are; 0, 0 when there are none.
func (l *Latencies) P95() (time.Duration, int) {
	l.mu.Lock()
	ds := slices.Clone(l.buf[:l.n])
	l.mu.Unlock()
	return Percentile(ds, 95), len(ds)
}

// Percentile returns the p-th percentile (0 < p <= 100) of ds by the
// nearest-rank method: the smallest value with at least p % of the values
// at or below it. It sorts ds. With fewer than 20 values the 95th
// percentile is the maximum, which errs towards alerting.
func Percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 || p <= 0 {
		return 0
	}
	slices.Sort(ds)
	rank := int(math.Ceil(float64(len(ds))*p/100 - 1e-9)) // the epsilon absorbs float noise: 20*0.95 is 19
	rank = min(max(rank, 1), len(ds))
	return ds[rank-1]
}
