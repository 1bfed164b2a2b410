package agent

import (
	"context"
	"errors"
	"sync"

	"github.com/forlock/fleet/agent/internal/identity"
	"github.com/forlock/fleet/agent/internal/logstream"
	"github.com/forlock/fleet/agent/internal/session"
	"github.com/forlock/fleet/agent/internal/tasks"
	"github.com/forlock/fleet/internal/buildinfo"
	"github.com/forlock/fleet/internal/protocol"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// session opens one mTLS connection and runs a control session on it, with
// certificate renewal beside it on the same connection, and the task runner
// attached to it once the control plane said hello. It returns the
// session's result and, if renewal was refused, why (errRenewed after a
// renewal: reconnect at once).
func (a *Agent) session(ctx context.Context, store *identity.Store, runner *tasks.Runner) (session.Result, error) {
	id := a.identity()
	conn, err := a.dial(id.CAPool, true)
	if err != nil {
		return session.Result{Err: err}, nil
	}
	defer func() { _ = conn.Close() }()
	client := forlockv1.NewAgentServiceClient(conn)

	// Renewal runs once the control plane has said hello (a certificate it
	// refuses must not try to renew: that would look like a stolen one).
	// A renewal ends the session so that the agent reconnects at once with
	// the new certificate, within the control plane's grace for the old one
	// (ErrSwitchConnection: no goodbye, the node stays online). A refused
	// renewal ends the session too: the identity needs re-enrolling.
	sctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var renewErr error
	var wg sync.WaitGroup
	renew := func() {
		renewErr = a.renewLoop(sctx, client, store)
		switch {
		case errors.Is(renewErr, errRenewed):
			cancel(session.ErrSwitchConnection)
		case renewErr != nil:
			cancel(renewErr)
		}
	}

	outbox := session.NewOutbox(0)
	res := session.Run(sctx, session.Config{
		Connector:    client,
		AgentVersion: buildinfo.Version(),
		Facts:        a.facts.Collect,
		Logger:       a.log,
		Capabilities: a.capabilities(),
		Outbox:       outbox,
		Health:       a.health.monitor.Latest,
		// A changed verdict goes out at once: alerts do not wait a tick.
		HealthChanged: a.health.monitor.Changed(),
		OnHello: func(h *forlockv1.ServerHello) {
			if d := h.GetHeartbeatInterval().AsDuration(); d > 0 {
				a.health.monitor.SetInterval(d)
			}
			if h.GetNodeId() != "" && h.GetNodeId() != id.NodeID {
				a.log.Warn("the control plane knows this agent by another node ID",
					"node_id", id.NodeID, "server_node_id", h.GetNodeId())
			}
			a.setConnected(true)
			runner.Attach(outbox)
			a.walOutbox.Store(outbox)
			a.sendWalReport()
			wg.Go(renew)
		},
		OnMessage: func(m *forlockv1.ConnectResponse) {
			if k := m.GetArchiveKey(); k != nil {
				a.archiveKey(k)
				return
			}
			if req := m.GetLogRequest(); req != nil {
				wg.Go(func() { a.serveLogs(sctx, client, req) })
				return
			}
			runner.Handle(m)
		},
	})
	runner.Detach(outbox)
	a.walOutbox.CompareAndSwap(outbox, nil)
	a.setConnected(false)
	cancel(nil)
	wg.Wait()
	return res, renewErr
}

// capabilities are the agent's on top of the session's: it runs tasks, and
// serves logs when it reaches Docker.
func (a *Agent) capabilities() []string {
	caps := []protocol.Capability{protocol.CapabilityTasks}
	if a.health.docker != nil {
		caps = append(caps, protocol.CapabilityLogs)
	}
	return protocol.Strings(caps...)
}

// serveLogs answers a LogRequest on a PushLogs stream of its own, on the
// session's connection; it ends with the session or when the control plane
// closes the stream.
func (a *Agent) serveLogs(ctx context.Context, client forlockv1.AgentServiceClient, req *forlockv1.LogRequest) {
	if a.health.docker == nil {
		return
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := client.PushLogs(ctx)
	if err != nil {
		a.log.Warn("cannot open a log stream", "err", err)
		return
	}
	if err := logstream.Serve(ctx, req, a.health.docker, stream); err != nil {
		a.log.Debug("log stream ended", "request_id", req.GetRequestId(), "err", err)
		return
	}
	if _, err := stream.CloseAndRecv(); err != nil && ctx.Err() == nil {
		a.log.Debug("log stream closed", "request_id", req.GetRequestId(), "err", err)
	}
}
