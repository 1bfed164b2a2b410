package api

import (
	"context"
	"errors"
	"io"
	"math"
	"time"

	"golang.org/x/time/rate"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/forlock/fleet/controlplane/internal/auth"
	"github.com/forlock/fleet/internal/protocol"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// helloTimeout bounds the wait for an agent's first message.
const helloTimeout = 15 * time.Second

// inboxSize bounds the messages received but not yet handled on one stream.
const inboxSize = 8

// serverCapabilities are the features this control plane offers.
var serverCapabilities = protocol.Strings(protocol.CapabilityHeartbeat, protocol.CapabilityPing,
	protocol.CapabilityTasks, protocol.CapabilityLogs)

// Bounds on what an agent may report about a task.
const (
	maxTaskMessage = 4096
	maxTaskDetails = 256
)

func validateTaskUpdate(u *forlockv1.TaskUpdate) error {
	if len(u.GetTaskId()) > 64 || len(u.GetMessage()) > maxTaskMessage || len(u.GetDetails()) > maxTaskDetails ||
		len(u.GetProgress().GetPhase()) > maxFactLen || len(u.GetProgress().GetMessage()) > maxTaskMessage {
		return invalid("task update has oversized fields")
	}
	for _, d := range u.GetDetails() {
		if len(d) > maxTaskMessage {
			return invalid("task update has an oversized detail line")
		}
	}
	return validateHealth(u.GetHealth())
}

// Bounds on a health report from an agent.
const (
	maxChecks          = 64
	maxContainers      = 64
	maxMeasurements    = 16 // per check
	maxMeasurementName = 64
)

func validateHealth(h *forlockv1.HealthReport) error {
	if len(h.GetChecks()) > maxChecks || len(h.GetContainers()) > maxContainers {
		return invalid("health report has too many checks or containers")
	}
	for _, c := range h.GetChecks() {
		if len(c.GetName()) > maxFactLen || len(c.GetMessage()) > maxTaskMessage {
			return invalid("health report has an oversized check")
		}
		if len(c.GetMeasurements()) > maxMeasurements {
			return invalid("health report has a check with too many measurements")
		}
		for _, m := range c.GetMeasurements() {
			if len(m.GetName()) > maxMeasurementName || len(m.GetSubject()) > maxFactLen ||
				math.IsNaN(m.GetValue()) || math.IsInf(m.GetValue(), 0) {
				return invalid("health report has an oversized or non-finite measurement")
			}
		}
	}
	for _, c := range h.GetContainers() {
		if len(c.GetName())+len(c.GetService())+len(c.GetState())+len(c.GetHealth())+len(c.GetImage())+len(c.GetImageDigest()) > 4*maxFactLen {
			return invalid("health report has an oversized container")
		}
	}
	return nil
}

// Connect implements AgentService.Connect. The handler goroutine owns every
// Send; one receive goroutine feeds it through a bounded channel. Both end
// with the stream.
func (a *AgentAPI) Connect(stream grpc.BidiStreamingServer[forlockv1.ConnectRequest, forlockv1.ConnectResponse]) error {
	ctx := stream.Context()
	id, ok := auth.NodeFromContext(ctx)
	if !ok {
		return status.Error(codes.Unauthenticated, "no node identity")
	}
	inbox, recvErr := receive(ctx, stream.Recv, inboxSize)

	hello, err := awaitHello(inbox, recvErr, stream)
	if err != nil {
		return err
	}
	sess, err := a.Registry.Attach(id, clientSerial(ctx), hello)
	if err != nil {
		return toStatus(ctx, a.Log, err)
	}
	goodbye := false
	defer func() { a.Registry.Detach(sess, goodbye) }()
	log := a.Log.With("node_id", id.ID)
	log.InfoContext(ctx, "agent connected", "agent_version", hello.GetAgentVersion())

	interval := a.Registry.Interval()
	if err := stream.Send(&forlockv1.ConnectResponse{Msg: &forlockv1.ConnectResponse_Hello{Hello: &forlockv1.ServerHello{
		ServerVersion:     serverVersion(),
		Capabilities:      serverCapabilities,
		HeartbeatInterval: durationpb.New(interval),
		NodeId:            id.ID,
	}}}); err != nil {
		return err
	}
	a.Jobs.NodeConnected(sess)
	rotate, err := a.sendArchiveKey(ctx, stream, id.ID)
	defer rotate.stop()
	if err != nil {
		return err
	}

	gate := newControlGate(a.Stream.withDefaults(interval))
	dropLog := rate.Sometimes{Interval: 10 * time.Second}
	// control reports whether to handle a heartbeat, ping or pong; err ends
	// the stream.
	control := func(kind string) (bool, error) {
		ok, err := gate.admit()
		if err != nil {
			log.WarnContext(ctx, "closing agent stream: control message flood", "node", sess.NodeName, "kind", kind, "err", err)
			return false, err
		}
		if !ok {
			dropLog.Do(func() {
				log.WarnContext(ctx, "agent sends control messages too fast: dropping the excess", "node", sess.NodeName, "kind", kind)
			})
		}
		return ok, nil
	}

	ping := time.NewTicker(interval)
	defer ping.Stop()
	var nonce uint64
	for {
		select {
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		case <-sess.Done():
			log.InfoContext(ctx, "closing agent stream", "reason", sess.Reason())
			_ = stream.Send(&forlockv1.ConnectResponse{Msg: &forlockv1.ConnectResponse_Goodbye{Goodbye: &forlockv1.Goodbye{Reason: sess.Reason()}}})
			return status.Error(codes.Aborted, sess.Reason())
		case <-rotate.C():
			if err := rotate.send(ctx, stream, a, id.ID); err != nil {
				return err
			}
		case m := <-sess.Outbox():
			if err := stream.Send(m); err != nil {
				return err
			}
		case now := <-ping.C:
			nonce++
			sess.PingSent(nonce, now)
			if err := stream.Send(&forlockv1.ConnectResponse{Msg: &forlockv1.ConnectResponse_Ping{Ping: &forlockv1.Ping{Nonce: nonce, SentAt: timestamppb.New(now)}}}); err != nil {
				return err
			}
		case m, open := <-inbox:
			if !open {
				if err := recvErr(); !errors.Is(err, io.EOF) {
					return err
				}
				return nil
			}
			switch msg := m.GetMsg().(type) {
			case *forlockv1.ConnectRequest_Heartbeat:
				if ok, err := control("heartbeat"); !ok {
					if err != nil {
						return err
					}
					continue
				}
				if err := validateFacts(msg.Heartbeat.GetFacts()); err != nil {
					return err
				}
				if err := validateHealth(msg.Heartbeat.GetHealth()); err != nil {
					return err
				}
				a.Registry.Heartbeat(sess, msg.Heartbeat.GetFacts(), msg.Heartbeat.GetHealth())
			case *forlockv1.ConnectRequest_Pong:
				if ok, err := control("pong"); !ok {
					if err != nil {
						return err
					}
					continue
				}
				a.Registry.Pong(sess, msg.Pong.GetNonce())
			case *forlockv1.ConnectRequest_Ping:
				if ok, err := control("ping"); !ok {
					if err != nil {
						return err
					}
					continue
				}
				if err := stream.Send(&forlockv1.ConnectResponse{Msg: &forlockv1.ConnectResponse_Pong{Pong: &forlockv1.Pong{Nonce: msg.Ping.GetNonce()}}}); err != nil {
					return err
				}
			case *forlockv1.ConnectRequest_TaskUpdate:
				if err := validateTaskUpdate(msg.TaskUpdate); err != nil {
					return err
				}
				a.Jobs.TaskUpdate(sess, msg.TaskUpdate)
			case *forlockv1.ConnectRequest_WalReport:
				if ok, err := control("wal_report"); !ok {
					if err != nil {
						return err
					}
					continue
				}
				if a.WAL == nil {
					continue
				}
				ranges, err := a.WAL.Validate(id.ID, msg.WalReport)
				if err != nil {
					log.WarnContext(ctx, "closing agent stream: WAL report refused", "node", sess.NodeName, "err", err)
					return toStatus(ctx, a.Log, err)
				}
				a.WAL.Report(ctx, id.ID, sess.NodeName, ranges, msg.WalReport)
			case *forlockv1.ConnectRequest_Goodbye:
				goodbye = true
				log.InfoContext(ctx, "agent said goodbye", "reason", msg.Goodbye.GetReason())
				return nil
			case *forlockv1.ConnectRequest_Hello:
				return invalid("hello sent twice on one stream")
			default:
				// A message kind from a newer agent: ignore it.
			}
		}
	}
}

// receive runs a stream's receive loop in its own goroutine, feeding a
// bounded channel, so the handler can select on messages, timers and its
// session at once. When Recv fails the channel is closed after every message
// received before the failure (a goodbye or a last log batch followed by
// EOF is never lost to a race between two channels); the returned function
// then says why. The loop also ends when ctx ends; grpc ends Recv when the
// handler returns.
func receive[T any](ctx context.Context, recv func() (*T, error), size int) (<-chan *T, func() error) {
	in := make(chan *T, size)
	var recvErr error
	go func() {
		defer close(in)
		for {
			m, err := recv()
			if err != nil {
				recvErr = err
				return
			}
			select {
			case in <- m:
			case <-ctx.Done():
				recvErr = status.FromContextError(ctx.Err()).Err()
				return
			}
		}
	}()
	// Reading recvErr after the channel is closed is ordered by the close.
	return in, func() error { return recvErr }
}

func awaitHello(inbox <-chan *forlockv1.ConnectRequest, recvErr func() error, stream grpc.ServerStream) (*forlockv1.AgentHello, error) {
	t := time.NewTimer(helloTimeout)
	defer t.Stop()
	select {
	case m, open := <-inbox:
		if !open {
			return nil, recvErr()
		}
		h := m.GetHello()
		if h == nil {
			return nil, invalid("the first message on the control stream must be a hello")
		}
		if len(h.GetAgentVersion()) > maxFactLen || len(h.GetCapabilities()) > 64 {
			return nil, invalid("hello has oversized fields")
		}
		return h, validateFacts(h.GetFacts())
	case <-t.C:
		return nil, status.Error(codes.DeadlineExceeded, "no hello within 15s")
	case <-stream.Context().Done():
		return nil, status.FromContextError(stream.Context().Err()).Err()
	}
}
