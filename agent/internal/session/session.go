// Package session runs one control stream (AgentService.Connect) of an
// agent, from the AgentHello to its end.
//
// A session sends the AgentHello, waits for the ServerHello (which sets the
// heartbeat interval), then sends a Heartbeat right away and at every
// interval, answers every Ping with a Pong, and ignores message kinds it
// does not know, or hands them to OnMessage. Other parts of the agent send
// on the stream through the session's Outbox, a bounded queue that the send
// loop drains after the ServerHello. It ends when the control plane says Goodbye, when the
// stream fails, when the stream stays silent too long, or when its context
// ends; in the last case it says Goodbye itself and half-closes the stream.
//
// As the style guide asks for bidirectional streams, a receive loop feeds a
// bounded channel and a single send loop owns every Send; both end when the
// stream's context ends, and Run waits for both.
package session

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"google.golang.org/grpc"

	"github.com/forlock/fleet/internal/protocol"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// Stream is the agent's end of the control stream.
type Stream = grpc.BidiStreamingClient[forlockv1.ConnectRequest, forlockv1.ConnectResponse]

// Connector opens control streams; forlockv1.AgentServiceClient is one.
type Connector interface {
	Connect(ctx context.Context, opts ...grpc.CallOption) (Stream, error)
}

// Defaults for Config.
const (
	DefaultHelloTimeout = 15 * time.Second
	DefaultCloseTimeout = 5 * time.Second
	// DefaultHeartbeatInterval applies if the ServerHello sets none.
	DefaultHeartbeatInterval = 10 * time.Second
	// minHeartbeatInterval guards against a zero or absurd interval.
	minHeartbeatInterval = 10 * time.Millisecond
	// inboxSize bounds the messages received but not yet handled.
	inboxSize = 16
)

// capabilities returns what this session implementation supports plus
// extra, for the AgentHello.
func capabilities(extra []string) []string {
	return append(protocol.Strings(protocol.CapabilityHeartbeat, protocol.CapabilityPing), extra...)
}

// GoodbyeReason is sent when the session's context ends with
// context.Canceled; other causes (see context.WithCancelCause) are sent as
// their error text.
const GoodbyeReason = "agent shutting down"

// ErrSwitchConnection ends the session without a goodbye when it is the
// cause of the session's context: the agent opens a new connection at once (it
// renewed its certificate and moves over to it), so the control plane must
// not mark the node offline. Queued messages are still sent first.
var ErrSwitchConnection = errors.New("moving to a new connection")

// Errors a session can end with, besides the stream's own.
var (
	ErrHelloTimeout = errors.New("the control plane sent no ServerHello in time")
	ErrClosed       = errors.New("the control plane ended the control stream without a goodbye")
	ErrSilent       = errors.New("the control stream went silent: no message and no answer to pings")
)

// Config describes one session.
type Config struct {
	// Connector opens the stream. Required.
	Connector Connector
	// AgentVersion goes into the AgentHello.
	AgentVersion string
	// Facts returns the current host facts, for the hello and each heartbeat.
	// Required.
	Facts func() *forlockv1.HostFacts
	// Health, if set, returns the latest health report (nil if none yet).
	// It must not block. A heartbeat carries it when it is not the report
	// the previous heartbeat of this session carried.
	Health func() *forlockv1.HealthReport
	// HealthChanged, if set, receives a value when the health report's
	// verdicts changed: a heartbeat then goes out at once, not at the next
	// tick.
	HealthChanged <-chan struct{}
	// HelloTimeout bounds the wait for the ServerHello; zero means
	// DefaultHelloTimeout.
	HelloTimeout time.Duration
	// CloseTimeout bounds how long a session that was told to stop may take
	// to deliver its goodbye; zero means DefaultCloseTimeout.
	CloseTimeout time.Duration
	// SilenceTimeout is how long the control plane may stay silent before
	// the stream is taken for dead (a half-open connection); a Ping goes out
	// after a third of it. Zero means max(6 heartbeat intervals, 1 minute).
	SilenceTimeout time.Duration
	// Logger receives the session's events; nil discards them.
	Logger *slog.Logger
	// OnHello, if set, is called once the ServerHello arrived, on the send
	// loop: it must not block.
	OnHello func(*forlockv1.ServerHello)
	// Capabilities are added to the AgentHello's, e.g. "tasks.v1".
	Capabilities []string
	// OnMessage, if set, receives every message of a kind the session does
	// not handle itself (task assignments, cancels, acks), in order, on the
	// send loop: it must not block, and may answer only with
	// Outbox.TrySend.
	OnMessage func(*forlockv1.ConnectResponse)
	// Outbox carries other senders' messages onto the stream after the
	// ServerHello; nil means none. Run closes it when the session ends.
	Outbox *Outbox
}

// Result tells how a session ended.
type Result struct {
	// Hello is the ServerHello, nil if the session never got one.
	Hello *forlockv1.ServerHello
	// Goodbye is the control plane's goodbye, if it sent one.
	Goodbye *forlockv1.Goodbye
	// Err is why the stream ended; nil after a goodbye of either side.
	Err error
}

// item is one result of Recv, passed from the receive loop to the send loop
// in order, so that a message is never overtaken by the stream's end.
type item struct {
	msg *forlockv1.ConnectResponse
	err error
}

// Run runs one session until it ends, and returns how it ended. It returns
// only after both of its loops have stopped.
func Run(ctx context.Context, cfg Config) Result {
	if cfg.HelloTimeout <= 0 {
		cfg.HelloTimeout = DefaultHelloTimeout
	}
	if cfg.CloseTimeout <= 0 {
		cfg.CloseTimeout = DefaultCloseTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Outbox == nil {
		cfg.Outbox = NewOutbox(1)
	}
	defer cfg.Outbox.close()

	// The stream outlives ctx by up to CloseTimeout so that a goodbye can be
	// delivered; after that it is cut, which also frees a blocked Send.
	streamCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()
	stopGrace := context.AfterFunc(ctx, func() { time.AfterFunc(cfg.CloseTimeout, cancel) })
	defer stopGrace()

	// Opening the stream waits for the connection: give up at once when
	// ctx ends.
	stopEarly := context.AfterFunc(ctx, cancel)
	stream, err := cfg.Connector.Connect(streamCtx)
	if !stopEarly() {
		return Result{}
	}
	if err != nil {
		return Result{Err: err}
	}

	in := make(chan item, inboxSize)
	wg.Go(func() {
		for {
			msg, err := stream.Recv()
			select {
			case in <- item{msg, err}:
			case <-streamCtx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	})

	s := &sender{cfg: cfg, stream: stream, in: in, streamCtx: streamCtx, log: cfg.Logger}
	return s.loop(ctx)
}
