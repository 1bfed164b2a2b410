package session

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// sender is the send loop of one session: it owns every Send.
type sender struct {
	cfg       Config
	stream    Stream
	in        <-chan item
	streamCtx context.Context
	log       *slog.Logger

	res      Result
	seq      uint64
	interval time.Duration
	lastRecv time.Time
	pinged   bool
	// health is the report the last heartbeat carried.
	health *forlockv1.HealthReport
}

func (s *sender) loop(ctx context.Context) Result {
	hello := &forlockv1.AgentHello{
		AgentVersion: s.cfg.AgentVersion,
		Capabilities: capabilities(s.cfg.Capabilities),
		Facts:        s.cfg.Facts(),
	}
	if err := s.send(&forlockv1.ConnectRequest{Msg: &forlockv1.ConnectRequest_Hello{Hello: hello}}); err != nil {
		return s.sendFailed("hello", err)
	}
	helloTimer := time.NewTimer(s.cfg.HelloTimeout)
	defer helloTimer.Stop()
	var ticker *time.Ticker
	var tick <-chan time.Time
	var outbox <-chan *forlockv1.ConnectRequest // drained after the ServerHello
	var changed <-chan struct{}                 // read after the ServerHello
	defer func() {
		if ticker != nil {
			ticker.Stop()
		}
	}()
	s.lastRecv = time.Now()

	for {
		select {
		case <-ctx.Done():
			return s.shutdown(ctx, outbox)

		case <-helloTimer.C:
			s.res.Err = ErrHelloTimeout
			return s.res

		case it := <-s.in:
			if it.err != nil {
				s.res.Err = recvError(it.err)
				return s.res
			}
			s.lastRecv, s.pinged = time.Now(), false
			switch m := it.msg.GetMsg().(type) {
			case *forlockv1.ConnectResponse_Hello:
				if s.res.Hello != nil {
					s.log.Warn("ignoring a second ServerHello on the control stream")
					continue
				}
				helloTimer.Stop()
				s.res.Hello = m.Hello
				s.interval = heartbeatInterval(m.Hello)
				ticker = time.NewTicker(s.interval)
				tick = ticker.C
				outbox, changed = s.cfg.Outbox.ch, s.cfg.HealthChanged
				s.log.Info("control stream established",
					"node_id", m.Hello.GetNodeId(), "server_version", m.Hello.GetServerVersion(),
					"heartbeat_interval", s.interval.String())
				if s.cfg.OnHello != nil {
					s.cfg.OnHello(m.Hello)
				}
				if err := s.heartbeat(); err != nil {
					return s.sendFailed("heartbeat", err)
				}
			case *forlockv1.ConnectResponse_Ping:
				pong := &forlockv1.Pong{Nonce: m.Ping.GetNonce()}
				if err := s.send(&forlockv1.ConnectRequest{Msg: &forlockv1.ConnectRequest_Pong{Pong: pong}}); err != nil {
					return s.sendFailed("pong", err)
				}
			case *forlockv1.ConnectResponse_Pong:
				// Liveness only: lastRecv was updated above.
			case *forlockv1.ConnectResponse_Goodbye:
				s.res.Goodbye = m.Goodbye
				s.log.Info("the control plane said goodbye", "reason", m.Goodbye.GetReason(),
					"reconnect_after", m.Goodbye.GetReconnectAfter().AsDuration().String())
				_ = s.stream.CloseSend()
				return s.res
			default:
				if s.cfg.OnMessage != nil && s.res.Hello != nil && it.msg.GetMsg() != nil {
					s.cfg.OnMessage(it.msg)
					continue
				}
				// A kind from a newer control plane: ignore it.
				s.log.Debug("ignoring an unknown message on the control stream")
			}

		case m := <-outbox:
			if err := s.send(m); err != nil {
				return s.sendFailed("queued message", err)
			}

		case <-changed:
			if err := s.heartbeat(); err != nil {
				return s.sendFailed("heartbeat", err)
			}

		case <-tick:
			quiet, silence := time.Since(s.lastRecv), s.silenceTimeout()
			if quiet >= silence {
				s.res.Err = fmt.Errorf("%w for %s", ErrSilent, quiet.Round(time.Second))
				return s.res
			}
			if quiet >= silence/3 && !s.pinged {
				if err := s.ping(); err != nil {
					return s.sendFailed("ping", err)
				}
				s.pinged = true
			}
			if err := s.heartbeat(); err != nil {
				return s.sendFailed("heartbeat", err)
			}
		}
	}
}

func (s *sender) silenceTimeout() time.Duration {
	if s.cfg.SilenceTimeout > 0 {
		return s.cfg.SilenceTimeout
	}
	return max(6*s.interval, time.Minute)
}

func (s *sender) send(m *forlockv1.ConnectRequest) error { return s.stream.Send(m) }

func (s *sender) heartbeat() error {
	s.seq++
	hb := &forlockv1.Heartbeat{Seq: s.seq, Facts: s.cfg.Facts()}
	if s.cfg.Health != nil {
		if h := s.cfg.Health(); h != nil && h != s.health {
			hb.Health, s.health = h, h
		}
	}
	return s.send(&forlockv1.ConnectRequest{Msg: &forlockv1.ConnectRequest_Heartbeat{Heartbeat: hb}})
}

// ping probes a quiet stream: a half-open connection is otherwise only
// noticed when TCP gives up, many minutes later.
func (s *sender) ping() error {
	p := &forlockv1.Ping{Nonce: rand.Uint64(), SentAt: timestamppb.Now()} //nolint:gosec // a nonce to match the pong, not a secret
	return s.send(&forlockv1.ConnectRequest{Msg: &forlockv1.ConnectRequest_Ping{Ping: p}})
}

// shutdown sends what the outbox holds (the last task updates), says
// goodbye (unless the cause is ErrSwitchConnection), half-closes the stream and waits (bounded by CloseTimeout through
// streamCtx) for the control plane to end it, so the goodbye is delivered
// before the connection closes.
func (s *sender) shutdown(ctx context.Context, outbox <-chan *forlockv1.ConnectRequest) Result {
	for drained := false; !drained; {
		select {
		case m := <-outbox:
			if err := s.send(m); err != nil {
				s.log.Debug("could not send a queued message before the goodbye", "error", err)
				return s.res
			}
		default:
			drained = true
		}
	}
	reason := GoodbyeReason
	cause := context.Cause(ctx)
	if cause != nil && !errors.Is(cause, context.Canceled) {
		reason = cause.Error()
	}
	var err error
	if !errors.Is(cause, ErrSwitchConnection) {
		bye := &forlockv1.Goodbye{Reason: reason}
		err = s.send(&forlockv1.ConnectRequest{Msg: &forlockv1.ConnectRequest_Goodbye{Goodbye: bye}})
	}
	if err == nil {
		err = s.stream.CloseSend()
	}
	if err != nil {
		s.log.Debug("could not say goodbye on the control stream", "error", err)
		return s.res
	}
	for {
		select {
		case it := <-s.in:
			if it.err != nil {
				return s.res
			}
		case <-s.streamCtx.Done():
			return s.res
		}
	}
}

// sendFailed turns a failed Send into the session's result. Send reports a
// stream ended by the peer as io.EOF; the real status comes from Recv, so
// it is awaited (briefly), together with a goodbye that may precede it.
func (s *sender) sendFailed(what string, err error) Result {
	s.res.Err = fmt.Errorf("send %s: %w", what, err)
	if !errors.Is(err, io.EOF) {
		return s.res
	}
	timer := time.NewTimer(s.cfg.CloseTimeout)
	defer timer.Stop()
	for {
		select {
		case it := <-s.in:
			if g := it.msg.GetGoodbye(); g != nil {
				s.res.Goodbye, s.res.Err = g, nil
				return s.res
			}
			if it.err != nil {
				s.res.Err = recvError(it.err)
				return s.res
			}
		case <-timer.C:
			return s.res
		case <-s.streamCtx.Done():
			return s.res
		}
	}
}

func recvError(err error) error {
	if errors.Is(err, io.EOF) {
		return ErrClosed
	}
	return err
}

func heartbeatInterval(h *forlockv1.ServerHello) time.Duration {
	d := h.GetHeartbeatInterval().AsDuration()
	switch {
	case h.GetHeartbeatInterval() == nil || d <= 0:
		return DefaultHeartbeatInterval
	case d < minHeartbeatInterval:
		return minHeartbeatInterval
	case d > time.Hour:
		return time.Hour
	}
	return d
}
