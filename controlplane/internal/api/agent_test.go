package api

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	"github.com/forlock/fleet/internal/pki"
	"github.com/forlock/fleet/internal/protocol"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

type controlStream = grpc.BidiStreamingClient[forlockv1.ConnectRequest, forlockv1.ConnectResponse]

// open opens the agent's control stream and says hello; it returns the
// stream and the server's hello.
func (a *agentConn) open(t *testing.T, caps ...protocol.Capability) (controlStream, *forlockv1.ServerHello) {
	t.Helper()
	st, err := a.api.Connect(t.Context())
	require.NoError(t, err)
	require.NoError(t, st.Send(&forlockv1.ConnectRequest{Msg: &forlockv1.ConnectRequest_Hello{Hello: &forlockv1.AgentHello{
		AgentVersion: "9.9.9", Capabilities: protocol.Strings(caps...), Facts: &forlockv1.HostFacts{Hostname: "host-a"},
	}}}))
	m, err := st.Recv()
	require.NoError(t, err)
	require.NotNil(t, m.GetHello(), "first message: %v", m)
	return st, m.GetHello()
}

// next receives the next message that is not a ping.
func next(t *testing.T, st controlStream) *forlockv1.ConnectResponse {
	t.Helper()
	for {
		m, err := st.Recv()
		require.NoError(t, err)
		if m.GetPing() == nil {
			return m
		}
	}
}

// recvErr receives until the stream ends and returns its error, with every
// goodbye seen before it.
func recvErr(st controlStream) (goodbyes []string, err error) {
	for {
		m, err := st.Recv()
		if err != nil {
			return goodbyes, err
		}
		if g := m.GetGoodbye(); g != nil {
			goodbyes = append(goodbyes, g.GetReason())
		}
	}
}

func (s *testServer) node(ref string) *forlockv1.Node {
	s.t.Helper()
	n, err := s.Nodes.GetNode(s.ctx(), &forlockv1.GetNodeRequest{Node: ref})
	require.NoError(s.t, err)
	return n.GetNode()
}

// TestConnect: an agent's control stream through the real TLS and
// interceptors: hello both ways, heartbeats and pings, a task from
// assignment to acknowledgement, and a goodbye that makes the node offline.
func TestConnect(t *testing.T) {
	s := newTestServer(t, serverOptions{})
	a := s.agent("web-1")
	st, hello := a.open(t, protocol.CapabilityHeartbeat, protocol.CapabilityPing, protocol.CapabilityTasks)
	require.Equal(t, a.id, hello.GetNodeId())
	require.Equal(t, time.Hour, hello.GetHeartbeatInterval().AsDuration())
	require.Contains(t, hello.GetCapabilities(), string(protocol.CapabilityTasks))
	n := s.node("web-1")
	require.Equal(t, forlockv1.NodeState_NODE_STATE_ONLINE, n.GetState())
	require.True(t, n.GetConnected())
	require.Equal(t, "9.9.9", n.GetAgentVersion())

	require.NoError(t, st.Send(&forlockv1.ConnectRequest{Msg: &forlockv1.ConnectRequest_Heartbeat{Heartbeat: &forlockv1.Heartbeat{
		Facts: &forlockv1.HostFacts{Hostname: "host-b"}}}}))
	require.NoError(t, st.Send(&forlockv1.ConnectRequest{Msg: &forlockv1.ConnectRequest_Ping{Ping: &forlockv1.Ping{Nonce: 42}}}))
	require.Equal(t, uint64(42), next(t, st).GetPong().GetNonce())
	require.Equal(t, "host-b", s.node("web-1").GetFacts().GetHostname(), "the heartbeat came before the ping")

	job, err := s.Jobs.SubmitJob(s.ctx(), &forlockv1.SubmitJobRequest{
		Spec:   &forlockv1.JobSpec{Kind: &forlockv1.JobSpec_HealthCheck{HealthCheck: &forlockv1.HealthCheckSpec{}}},
		Target: &forlockv1.Target{Nodes: []string{"web-1"}},
	})
	require.NoError(t, err)
	as := next(t, st).GetTaskAssignment()
	require.NotNil(t, as)
	require.Equal(t, job.GetJob().GetId(), as.GetJobId())
	for _, state := range []forlockv1.TaskState{forlockv1.TaskState_TASK_STATE_RUNNING, forlockv1.TaskState_TASK_STATE_SUCCEEDED} {
		require.NoError(t, st.Send(&forlockv1.ConnectRequest{Msg: &forlockv1.ConnectRequest_TaskUpdate{TaskUpdate: &forlockv1.TaskUpdate{
			TaskId: as.GetTaskId(), State: state, Message: "ok"}}}))
	}
	require.Equal(t, as.GetTaskId(), next(t, st).GetTaskAck().GetTaskId(), "the result is acknowledged once durable")
	got, err := s.Jobs.GetJob(s.ctx(), &forlockv1.GetJobRequest{Id: as.GetJobId(), IncludeHistory: true})
	require.NoError(t, err)
	require.Equal(t, forlockv1.JobState_JOB_STATE_SUCCEEDED, got.GetJob().GetState())
	require.NotEmpty(t, got.GetHistory())

	require.NoError(t, st.Send(&forlockv1.ConnectRequest{Msg: &forlockv1.ConnectRequest_Goodbye{Goodbye: &forlockv1.Goodbye{Reason: "shutting down"}}}))
	_, err = recvErr(st)
	require.ErrorIs(t, err, io.EOF)
	require.Eventually(t, func() bool { return !s.node("web-1").GetConnected() }, 5*time.Second, 5*time.Millisecond)
	require.Equal(t, forlockv1.NodeState_NODE_STATE_OFFLINE, s.node("web-1").GetState())
}

// TestConnectRefusals: protocol errors end the stream with InvalidArgument;
// a newer stream of the node replaces the older with a goodbye; a removed
// node's certificate is refused at once; an agent's certificate is not an
// operator's credential.
func TestConnectRefusals(t *testing.T) {
	s := newTestServer(t, serverOptions{})
	a := s.agent("web-1")

	st, err := a.api.Connect(t.Context())
	require.NoError(t, err)
	require.NoError(t, st.Send(&forlockv1.ConnectRequest{Msg: &forlockv1.ConnectRequest_Heartbeat{Heartbeat: &forlockv1.Heartbeat{}}}))
	_, err = recvErr(st)
	requireStatus(t, err, codes.InvalidArgument, "the first message on the control stream must be a hello", "")

	st, _ = a.open(t)
	require.NoError(t, st.Send(&forlockv1.ConnectRequest{Msg: &forlockv1.ConnectRequest_Hello{Hello: &forlockv1.AgentHello{}}}))
	_, err = recvErr(st)
	requireStatus(t, err, codes.InvalidArgument, "hello sent twice on one stream", "")

	st, _ = a.open(t)
	long := string(make([]byte, maxFactLen+1))
	require.NoError(t, st.Send(&forlockv1.ConnectRequest{Msg: &forlockv1.ConnectRequest_Heartbeat{Heartbeat: &forlockv1.Heartbeat{
		Facts: &forlockv1.HostFacts{Os: long}}}}))
	_, err = recvErr(st)
	requireStatus(t, err, codes.InvalidArgument, "host facts: os longer than 256 bytes", "")

	old, _ := a.open(t)
	cur, _ := a.open(t)
	goodbyes, err := recvErr(old)
	requireStatus(t, err, codes.Aborted, "replaced by a newer connection from the same node", "")
	require.Equal(t, []string{"replaced by a newer connection from the same node"}, goodbyes)

	// The agent's certificate does not make it an operator.
	_, err = forlockv1.NewNodeServiceClient(a.conn).ListNodes(t.Context(), &forlockv1.ListNodesRequest{})
	requireStatus(t, err, codes.Unauthenticated, "missing admin token", "")

	_, err = s.Nodes.RemoveNode(s.ctx(), &forlockv1.RemoveNodeRequest{Node: "web-1"})
	require.NoError(t, err)
	goodbyes, err = recvErr(cur)
	requireStatus(t, err, codes.Aborted, "node removed from the fleet", "")
	require.Equal(t, []string{"node removed from the fleet"}, goodbyes)
	st, err = a.api.Connect(t.Context())
	require.NoError(t, err)
	_, err = st.Recv()
	requireStatus(t, err, codes.Unauthenticated, "node "+a.id+" refused: node is not registered", "")
}

// TestRenewCertificate: an agent renews with its newest certificate; the
// one before stays valid for the grace, and a renewal from a certificate
// past its grace quarantines the node.
func TestRenewCertificate(t *testing.T) {
	s := newTestServer(t, serverOptions{})
	a := s.agent("web-1")
	first := a.cert
	renew := func(conn *grpc.ClientConn) (*forlockv1.RenewCertificateResponse, error) {
		csr, err := pki.CreateCSR(a.key, "web-1")
		require.NoError(t, err)
		return forlockv1.NewAgentServiceClient(conn).RenewCertificate(t.Context(), &forlockv1.RenewCertificateRequest{Csr: csr})
	}
	resp, err := renew(a.conn)
	require.NoError(t, err)
	second := s.clientCert(resp.GetCertificateChain(), a.key)
	id, err := pki.NodeIdentity(second.Leaf)
	require.NoError(t, err)
	require.Equal(t, a.id, id.ID)
	require.Equal(t, pki.SerialHex(second.Leaf), s.node("web-1").GetCertificateSerial())

	// Renew again from the newest: the first certificate is now neither
	// newest nor previous.
	c2 := s.dial(&second)
	defer func() { _ = c2.Close() }()
	_, err = renew(c2)
	require.NoError(t, err)
	c1 := s.dial(&first)
	defer func() { _ = c1.Close() }()
	_, err = renew(c1)
	requireStatus(t, err, codes.Unauthenticated, "refused: certificate superseded by a newer one", "")
	require.True(t, s.node("web-1").GetQuarantined(), "a superseded certificate that renews quarantines its node")
	require.Contains(t, s.logs.String(), "POSSIBLE STOLEN CERTIFICATE")
	_, err = renew(c2)
	requireStatus(t, err, codes.Unauthenticated, "node is quarantined", "")
}

// TestLogsThroughTheAgent: an operator's log stream is asked of the agent on
// its control stream, and the lines the agent pushes reach the operator in
// order, then the end.
func TestLogsThroughTheAgent(t *testing.T) {
	s := newTestServer(t, serverOptions{})
	a := s.agent("web-1")
	st, _ := a.open(t, protocol.CapabilityLogs)

	ctx, cancel := context.WithTimeout(s.ctx(), 10*time.Second)
	defer cancel()
	logs, err := s.Logs.StreamLogs(ctx, &forlockv1.StreamLogsRequest{Node: "web-1", Query: &forlockv1.LogQuery{Services: []string{"api"}, Tail: 2}})
	require.NoError(t, err)
	req := next(t, st).GetLogRequest()
	require.NotNil(t, req)
	require.Equal(t, []string{"api"}, req.GetQuery().GetServices())

	push, err := a.api.PushLogs(t.Context())
	require.NoError(t, err)
	for _, text := range []string{"one", "two"} {
		require.NoError(t, push.Send(&forlockv1.PushLogsRequest{RequestId: req.GetRequestId(),
			Lines: []*forlockv1.LogLine{{Service: "api", Text: text}}}))
	}
	_, err = push.CloseAndRecv()
	require.NoError(t, err)
	var got []string
	for {
		m, err := logs.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		for _, l := range m.GetLines() {
			got = append(got, l.GetText())
		}
	}
	require.Equal(t, []string{"one", "two"}, got)

	// A push for a request nobody waits for is NotFound with its reason.
	push, err = a.api.PushLogs(t.Context())
	require.NoError(t, err)
	require.NoError(t, push.Send(&forlockv1.PushLogsRequest{RequestId: req.GetRequestId()}))
	_, err = push.CloseAndRecv()
	requireStatus(t, err, codes.NotFound, "no reader is waiting for this log stream", "LOG_READER_GONE")

	// An agent that cannot stream logs is told apart from an offline one.
	b := s.agent("web-2")
	b.open(t, protocol.CapabilityTasks)
	logs, err = s.Logs.StreamLogs(s.ctx(), &forlockv1.StreamLogsRequest{Node: "web-2"})
	require.NoError(t, err)
	_, err = logs.Recv()
	requireStatus(t, err, codes.FailedPrecondition, "the agent on node web-2 cannot stream logs: upgrade it", "")
}
