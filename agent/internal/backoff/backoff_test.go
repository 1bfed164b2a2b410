package backoff

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestNextStaysWithinGrowingCeiling(t *testing.T) {
	b := New(100*time.Millisecond, 1*time.Second)
	wantCeil := []time.Duration{100, 200, 400, 800, 1000, 1000, 1000}
	for i, c := range wantCeil {
		c *= time.Millisecond
		require.Equal(t, c, b.Ceiling(), "attempt %d", i)
		for range 50 {
			// Draw many delays from the same ceiling without advancing.
			probe := *b
			d := probe.Next()
			require.GreaterOrEqual(t, d, time.Duration(0))
			require.LessOrEqual(t, d, c)
		}
		b.Next()
	}
}

func TestNextUsesFullRange(t *testing.T) {
	var asked []int64
	b := &Backoff{Min: time.Second, Max: 4 * time.Second, randN: func(n int64) int64 {
		asked = append(asked, n)
		return n - 1 // the largest value allowed
	}}
	require.Equal(t, time.Second, b.Next())
	require.Equal(t, 2*time.Second, b.Next())
	require.Equal(t, 4*time.Second, b.Next())
	require.Equal(t, 4*time.Second, b.Next())
	require.Equal(t, []int64{1e9 + 1, 2e9 + 1, 4e9 + 1, 4e9 + 1}, asked)

	b.randN = func(int64) int64 { return 0 }
	require.Equal(t, time.Duration(0), b.Next(), "full jitter may retry at once")
}

func TestResetAndDefaults(t *testing.T) {
	b := &Backoff{}
	require.Equal(t, DefaultMin, b.Ceiling())
	for range 100 {
		b.Next()
	}
	require.Equal(t, DefaultMax, b.Ceiling())
	b.Reset()
	require.Equal(t, DefaultMin, b.Ceiling())

	inverted := New(time.Second, time.Millisecond)
	require.Equal(t, time.Second, inverted.Ceiling(), "a max below min is raised to min")
}

func TestWait(t *testing.T) {
	require.NoError(t, Wait(context.Background(), time.Millisecond))
	require.NoError(t, Wait(context.Background(), 0))

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	start := time.Now()
	require.ErrorIs(t, Wait(ctx, time.Hour), context.Canceled)
	require.Less(t, time.Since(start), time.Minute)
	require.ErrorIs(t, Wait(ctx, 0), context.Canceled)
}
