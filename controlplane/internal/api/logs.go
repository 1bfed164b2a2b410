package api

import (
	"errors"
	"io"
	"log/slog"
	"slices"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/forlock/fleet/controlplane/internal/auth"
	"github.com/forlock/fleet/controlplane/internal/logs"
	"github.com/forlock/fleet/controlplane/internal/registry"
	"github.com/forlock/fleet/controlplane/internal/store"
	"github.com/forlock/fleet/internal/protocol"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// attachTimeout bounds the wait for the agent to open its log stream.
const attachTimeout = 10 * time.Second

// Limits on log queries and batches.
const (
	maxTail       = 100000
	maxBatchLines = 1000
	maxLineBytes  = 64 << 10
)

// LogServices are the services a log query may name.
var LogServices = []string{"api", "postgres", "redis", "nginx"}

// LogAPI implements forlockv1.LogService.
type LogAPI struct {
	forlockv1.UnsafeLogServiceServer

	Registry *registry.Registry
	Broker   *logs.Broker
	Log      *slog.Logger
}

// StreamLogs implements LogService.StreamLogs.
func (a *LogAPI) StreamLogs(req *forlockv1.StreamLogsRequest, stream grpc.ServerStreamingServer[forlockv1.StreamLogsResponse]) error {
	ctx := stream.Context()
	q := req.GetQuery()
	if err := validateLogQuery(q); err != nil {
		return err
	}
	node, err := a.Registry.Find(req.GetNode())
	if err == nil && !sees(ctx, a.Registry, node.ID) {
		err = store.NodeNotFound(req.GetNode()) // outside the caller's scope is the same as absent
	}
	if err != nil {
		return toStatus(ctx, a.Log, err)
	}
	sess := a.Registry.Session(node.ID)
	if sess == nil {
		return status.Errorf(codes.Unavailable, "node %s is not connected: its logs cannot be read now", node.Name)
	}
	if !sess.Can(protocol.CapabilityLogs) {
		return status.Errorf(codes.FailedPrecondition, "the agent on node %s cannot stream logs: upgrade it", node.Name)
	}
	p := a.Broker.Open(node.ID)
	defer a.Broker.Close(p)
	if !sess.Send(&forlockv1.ConnectResponse{Msg: &forlockv1.ConnectResponse_LogRequest{LogRequest: &forlockv1.LogRequest{RequestId: p.ID, Query: q}}}) {
		return status.Errorf(codes.Unavailable, "node %s is busy or disconnecting: try again", node.Name)
	}
	select {
	case <-p.Attached():
	case <-time.After(attachTimeout):
		return status.Errorf(codes.DeadlineExceeded, "the agent on node %s did not open its log stream within %s", node.Name, attachTimeout)
	case <-ctx.Done():
		return status.FromContextError(ctx.Err()).Err()
	}
	for {
		select {
		case lines := <-p.Lines:
			if err := stream.Send(&forlockv1.StreamLogsResponse{Lines: lines}); err != nil {
				return err
			}
		case <-p.Ended():
			if err := sendQueued(p, stream); err != nil {
				return err
			}
			if msg := p.Err(); msg != "" {
				return status.Errorf(codes.Unavailable, "node %s: %s", node.Name, msg)
			}
			return nil
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		}
	}
}

// sendQueued sends the batches still queued after the agent's stream ended.
func sendQueued(p *logs.Pipe, stream grpc.ServerStreamingServer[forlockv1.StreamLogsResponse]) error {
	for {
		select {
		case lines := <-p.Lines:
			if err := stream.Send(&forlockv1.StreamLogsResponse{Lines: lines}); err != nil {
				return err
			}
		default:
			return nil
		}
	}
}

func validateLogQuery(q *forlockv1.LogQuery) error {
	for _, s := range q.GetServices() {
		if !slices.Contains(LogServices, s) {
			return invalid("unknown service %q: use api, postgres, redis or nginx", s)
		}
	}
	if q.GetTail() > maxTail {
		return invalid("tail %d: at most %d", q.GetTail(), maxTail)
	}
	if d := q.GetSince(); d != nil && (d.CheckValid() != nil || d.AsDuration() < 0) {
		return invalid("since must be a positive duration")
	}
	return nil
}

// PushLogs implements AgentService.PushLogs.
func (a *AgentAPI) PushLogs(stream grpc.ClientStreamingServer[forlockv1.PushLogsRequest, forlockv1.PushLogsResponse]) error {
	ctx := stream.Context()
	id, ok := auth.NodeFromContext(ctx)
	if !ok {
		return status.Error(codes.Unauthenticated, "no node identity")
	}
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	p, err := a.Broker.Attach(first.GetRequestId(), id.ID)
	if err != nil {
		return toStatus(ctx, a.Log, err)
	}
	in, recvErr := receive(ctx, stream.Recv, 1)
	m := first
	for {
		if err := validateLogBatch(m); err != nil {
			p.End("agent sent an invalid log batch")
			return err
		}
		if m.GetError() != "" {
			p.End(m.GetError())
			return stream.SendAndClose(&forlockv1.PushLogsResponse{})
		}
		if len(m.GetLines()) > 0 {
			select {
			case p.Lines <- m.GetLines():
			case <-p.Done():
				return status.Error(codes.Canceled, "the log reader has gone")
			case <-ctx.Done():
				p.End("log stream from the agent broke")
				return status.FromContextError(ctx.Err()).Err()
			}
		}
		select {
		case next, open := <-in:
			if open {
				m = next
				continue
			}
			if err := recvErr(); !errors.Is(err, io.EOF) {
				p.End("log stream from the agent broke")
				return err
			}
			p.End("")
			return stream.SendAndClose(&forlockv1.PushLogsResponse{})
		case <-p.Done():
			return status.Error(codes.Canceled, "the log reader has gone")
		}
	}
}

func validateLogBatch(m *forlockv1.PushLogsRequest) error {
	if len(m.GetLines()) > maxBatchLines || len(m.GetError()) > maxTaskMessage {
		return invalid("log batch too large")
	}
	for _, l := range m.GetLines() {
		if len(l.GetText()) > maxLineBytes || !slices.Contains(LogServices, l.GetService()) {
			return invalid("log line too long or from an unknown service")
		}
	}
	return nil
}
