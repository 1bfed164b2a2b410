package session

import (
	"context"
	"sync"

	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// DefaultOutboxSize bounds the messages queued on an Outbox.
const DefaultOutboxSize = 256

// Outbox is the bounded send path other parts of the agent (the task
// runner) use to put messages on one session's control stream. The
// session's send loop drains it once the ServerHello has arrived; when the
// session ends the outbox is closed and whatever it still holds is dropped:
// senders must keep anything that matters elsewhere (the task journal) and
// send it again on the next session.
type Outbox struct {
	ch     chan *forlockv1.ConnectRequest
	done   chan struct{}
	closed sync.Once
}

// NewOutbox returns an outbox holding up to size messages; size <= 0 means
// DefaultOutboxSize.
func NewOutbox(size int) *Outbox {
	if size <= 0 {
		size = DefaultOutboxSize
	}
	return &Outbox{ch: make(chan *forlockv1.ConnectRequest, size), done: make(chan struct{})}
}

// TrySend queues m without blocking. It returns false if the outbox is
// full or its session has ended.
func (o *Outbox) TrySend(m *forlockv1.ConnectRequest) bool {
	select {
	case <-o.done:
		return false
	default:
	}
	select {
	case o.ch <- m:
		return true
	default:
		return false
	}
}

// Send queues m, waiting for room until ctx ends or the session ends. It
// returns whether m was queued. Never call it from the session's own
// callbacks: only the session drains the outbox.
func (o *Outbox) Send(ctx context.Context, m *forlockv1.ConnectRequest) bool {
	select {
	case <-o.done:
		return false
	case <-ctx.Done():
		return false
	default:
	}
	select {
	case o.ch <- m:
		return true
	case <-o.done:
		return false
	case <-ctx.Done():
		return false
	}
}

// Done is closed when the outbox's session has ended.
func (o *Outbox) Done() <-chan struct{} { return o.done }

func (o *Outbox) close() { o.closed.Do(func() { close(o.done) }) }
