package api

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestStreamLimitDefaults(t *testing.T) {
	require.Equal(t, StreamLimits{Rate: 10, Burst: 20}, StreamLimits{}.withDefaults(10*time.Second))
	require.Equal(t, StreamLimits{Rate: 50, Burst: 100}, StreamLimits{}.withDefaults(100*time.Millisecond), "fast heartbeats get room")
	require.Equal(t, StreamLimits{Rate: 3, Burst: 20}, StreamLimits{Rate: 3}.withDefaults(time.Second))
}

// TestControlGate: a burst passes, then the excess is dropped, and a flood
// that goes on closes the stream.
func TestControlGate(t *testing.T) {
	g := newControlGate(StreamLimits{Rate: 1, Burst: 5})
	handled, dropped := 0, 0
	var err error
	for err == nil {
		var ok bool
		ok, err = g.admit()
		switch {
		case ok:
			handled++
		case err == nil:
			dropped++
		}
	}
	require.Equal(t, 5, handled, "the burst passes")
	require.Equal(t, 50, dropped, "then ten bursts are dropped")
	require.Equal(t, codes.ResourceExhausted, status.Code(err))
	require.ErrorContains(t, err, "too many heartbeats and pings")
}
