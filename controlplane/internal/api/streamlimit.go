package api

import (
	"time"

	"golang.org/x/time/rate"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// StreamLimits bound the control messages (heartbeats, pings, pongs) one
// agent stream may send. A well-behaved agent sends about two per heartbeat
// interval. Messages over the rate are dropped; a stream that keeps sending
// at more than twice the rate, well past the burst, is closed with
// ResourceExhausted. Task updates are not counted here: the job engine
// bounds what they cost (jobs.Limits).
type StreamLimits struct {
	// Rate is the control messages a second a stream may send; 0 means
	// max(10, 5 per heartbeat interval).
	Rate float64
	// Burst is how many may come at once; 0 means twice the rate, at
	// least 20.
	Burst int
}

// withDefaults fills unset limits for agents told to send heartbeats every
// interval.
func (l StreamLimits) withDefaults(interval time.Duration) StreamLimits {
	if l.Rate <= 0 {
		l.Rate = max(10, 5*float64(time.Second)/float64(max(interval, time.Millisecond)))
	}
	if l.Burst <= 0 {
		l.Burst = max(20, int(2*l.Rate))
	}
	return l
}

// controlGate applies StreamLimits to one stream.
type controlGate struct {
	allow *rate.Limiter // messages handled
	flood *rate.Limiter // messages dropped before the stream is closed
}

func newControlGate(l StreamLimits) *controlGate {
	return &controlGate{
		allow: rate.NewLimiter(rate.Limit(l.Rate), l.Burst),
		flood: rate.NewLimiter(rate.Limit(l.Rate), 10*l.Burst),
	}
}

// admit reports whether to handle the next control message; the error,
// when not nil, ends the stream.
func (g *controlGate) admit() (bool, error) {
	if g.allow.Allow() {
		return true, nil
	}
	if g.flood.Allow() {
		return false, nil
	}
	return false, status.Errorf(codes.ResourceExhausted,
		"too many heartbeats and pings: more than %.0f a second sustained; the stream is closed (reconnect with a well-behaved agent)", float64(g.allow.Limit()))
}
