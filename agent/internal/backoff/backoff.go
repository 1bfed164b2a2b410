// Package backoff computes retry delays for the agent's reconnect, enrollment
// and renewal loops: exponential growth with full jitter and a cap, so that a
// fleet of agents that lost its control plane at the same moment does not
// come back at the same moment.
//
// The delay before attempt n (counting from zero) is drawn uniformly from
// [0, min(Max, Min·2ⁿ)] ("full jitter", as in the AWS architecture blog's
// "Exponential Backoff And Jitter").
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Defaults used when Min or Max is zero.
const (
	DefaultMin = 500 * time.Millisecond
	DefaultMax = 30 * time.Second
)

// Backoff hands out successive retry delays. The zero value uses the
// defaults. It is not safe for concurrent use: give each loop its own.
type Backoff struct {
	// Min is the ceiling of the first delay.
	Min time.Duration
	// Max caps every delay.
	Max time.Duration

	attempt int
	// randN returns a uniform value in [0, n); nil means math/rand/v2.
	randN func(n int64) int64
}

// New returns a Backoff between min and max; zero values take the defaults.
func New(minDelay, maxDelay time.Duration) *Backoff {
	return &Backoff{Min: minDelay, Max: maxDelay}
}

// Ceiling returns the upper bound of the next delay without consuming it.
func (b *Backoff) Ceiling() time.Duration {
	lo, hi := b.bounds()
	ceil := lo
	for i := 0; i < b.attempt && ceil < hi; i++ {
		ceil *= 2
	}
	return min(ceil, hi)
}

// Next returns the delay to wait before the next attempt and advances the
// attempt counter.
func (b *Backoff) Next() time.Duration {
	ceil := b.Ceiling()
	if _, hi := b.bounds(); ceil < hi {
		b.attempt++
	}
	randN := b.randN
	if randN == nil {
		randN = rand.Int64N
	}
	return time.Duration(randN(int64(ceil) + 1))
}

// Reset starts the sequence again from Min, after a success.
func (b *Backoff) Reset() { b.attempt = 0 }

func (b *Backoff) bounds() (lo, hi time.Duration) {
	lo, hi = b.Min, b.Max
	if lo <= 0 {
		lo = DefaultMin
	}
	if hi <= 0 {
		hi = DefaultMax
	}
	if hi < lo {
		hi = lo
	}
	return lo, hi
}

// Wait sleeps for d or until ctx ends, whichever comes first. It returns
// ctx.Err() if ctx ended first.
func Wait(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
