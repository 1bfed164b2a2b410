package checks

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func ms(n ...int) []time.Duration {
	ds := make([]time.Duration, len(n))
	for i, v := range n {
		ds[i] = time.Duration(v) * time.Millisecond
	}
	return ds
}

func TestPercentile(t *testing.T) {
	twenty := make([]int, 20)
	for i := range twenty {
		twenty[i] = i + 1 // 1..20 ms
	}
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = 100 - i // 100..1 ms, unsorted
	}
	tests := []struct {
		name string
		in   []time.Duration
		p    float64
		want time.Duration
	}{
		{"empty", nil, 95, 0},
		{"one", ms(7), 95, 7 * time.Millisecond},
		{"few: the maximum", ms(10, 900, 20), 95, 900 * time.Millisecond},
		{"twenty: the 19th", ms(twenty...), 95, 19 * time.Millisecond},
		{"hundred: the 95th", ms(hundred...), 95, 95 * time.Millisecond},
		{"median", ms(hundred...), 50, 50 * time.Millisecond},
		{"p100 is the max", ms(3, 1, 2), 100, 3 * time.Millisecond},
		{"p0", ms(3, 1, 2), 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, Percentile(tt.in, tt.p))
		})
	}
}

func TestLatenciesRing(t *testing.T) {
	l := NewLatencies(4)
	p, n := l.P95()
	require.Zero(t, p)
	require.Zero(t, n)
	for _, d := range ms(900, 10, 20, 30) {
		l.Add(d)
	}
	p, n = l.P95()
	require.Equal(t, 900*time.Millisecond, p)
	require.Equal(t, 4, n)
	l.Add(40 * time.Millisecond) // the slow one falls out
	p, n = l.P95()
	require.Equal(t, 40*time.Millisecond, p)
	require.Equal(t, 4, n)
	require.Len(t, NewLatencies(0).buf, 1)
}
