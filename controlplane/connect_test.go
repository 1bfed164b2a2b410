package controlplane

import (
	"context"
	"crypto/tls"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	"github.com/forlock/fleet/internal/pki"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

type stream = grpc.BidiStreamingClient[forlockv1.ConnectRequest, forlockv1.ConnectResponse]

// connect opens a control stream with the identity's certificate and
// completes the hello exchange.
func (e *env) connect(id *identity) (stream, *forlockv1.ServerHello) {
	e.t.Helper()
	s, err := e.tryConnect(id.tlsCrt)
	require.NoError(e.t, err)
	resp, err := s.Recv()
	require.NoError(e.t, err)
	require.NotNil(e.t, resp.GetHello(), "first message must be the server hello")
	// Then the node's WAL archive key, before anything else.
	key, err := s.Recv()
	require.NoError(e.t, err)
	require.Len(e.t, key.GetArchiveKey().GetPlainKey(), 32, "second message must be the archive key: %v", key)
	return s, resp.GetHello()
}

func (e *env) tryConnect(cert tls.Certificate) (stream, error) {
	ctx, cancel := context.WithCancel(context.Background())
	e.t.Cleanup(cancel)
	c := &cert
	if cert.PrivateKey == nil {
		c = nil
	}
	s, err := forlockv1.NewAgentServiceClient(e.dial(c)).Connect(ctx)
	if err != nil {
		return nil, err
	}
	// A refused stream fails Send with io.EOF; the status comes from Recv.
	_ = s.Send(&forlockv1.ConnectRequest{Msg: &forlockv1.ConnectRequest_Hello{Hello: &forlockv1.AgentHello{AgentVersion: "test", Capabilities: []string{"heartbeat.v1"}}}})
	return s, nil
}

func heartbeat(t *testing.T, s stream, seq uint64) {
	t.Helper()
	require.NoError(t, s.Send(&forlockv1.ConnectRequest{Msg: &forlockv1.ConnectRequest_Heartbeat{Heartbeat: &forlockv1.Heartbeat{Seq: seq, Facts: &forlockv1.HostFacts{Hostname: "h"}}}}))
}

func (e *env) node(ref string) *forlockv1.Node {
	e.t.Helper()
	resp, err := e.nodes.GetNode(e.admin(), &forlockv1.GetNodeRequest{Node: ref})
	require.NoError(e.t, err)
	return resp.GetNode()
}

func (e *env) waitState(ref string, want forlockv1.NodeState, within time.Duration) time.Duration {
	e.t.Helper()
	start := time.Now()
	require.Eventually(e.t, func() bool { return e.node(ref).GetState() == want }, within, 10*time.Millisecond,
		"node %s never reached %s", ref, want)
	return time.Since(start)
}

func TestConnectRefusals(t *testing.T) {
	e := startEnv(t, nil)
	id := e.mustEnroll(e.token(1, time.Hour, nil), "n1")

	t.Run("no client certificate", func(t *testing.T) {
		s, err := e.tryConnect(tls.Certificate{})
		if err == nil {
			_, err = s.Recv()
		}
		requireCode(t, err, codes.Unauthenticated, "client certificate")
	})

	t.Run("certificate from another CA", func(t *testing.T) {
		other, err := pki.NewCA(time.Now(), "other")
		require.NoError(t, err)
		key, err := pki.GenerateKey()
		require.NoError(t, err)
		csr, err := pki.CreateCSR(key, "x")
		require.NoError(t, err)
		parsed, err := pki.ParseCSR(csr)
		require.NoError(t, err)
		// Same node ID and epoch as a real node: only the issuer differs.
		forged, err := other.IssueNode(time.Now(), parsed, pki.NodeID{ID: id.resp.GetNodeId(), Epoch: 1}, time.Hour)
		require.NoError(t, err)
		s, err := e.tryConnect(tls.Certificate{Certificate: [][]byte{forged.Raw}, PrivateKey: key})
		if err == nil {
			_, err = s.Recv()
		}
		requireCode(t, err, codes.Unavailable, "")
	})

	t.Run("removed node", func(t *testing.T) {
		s, _ := e.connect(id)
		_, err := e.nodes.RemoveNode(e.admin(), &forlockv1.RemoveNodeRequest{Node: "n1"})
		require.NoError(t, err)
		// The open stream is told goodbye and closed.
		msg, err := s.Recv()
		require.NoError(t, err)
		require.Contains(t, msg.GetGoodbye().GetReason(), "removed")
		_, err = s.Recv()
		requireCode(t, err, codes.Aborted, "removed")
		// And the certificate is refused from then on.
		s, err = e.tryConnect(id.tlsCrt)
		if err == nil {
			_, err = s.Recv()
		}
		requireCode(t, err, codes.Unauthenticated, "not registered")
		_, err = forlockv1.NewAgentServiceClient(e.dial(&id.tlsCrt)).RenewCertificate(context.Background(), &forlockv1.RenewCertificateRequest{})
		requireCode(t, err, codes.Unauthenticated, "not registered")
	})
}

func TestReenrollmentWithItsKeyKeepsIDAndRetiresOldIdentity(t *testing.T) {
	e := startEnv(t, nil)
	first := e.mustEnroll(e.token(1, time.Hour, map[string]string{"env": "prod"}), "web-1")
	s, hello := e.connect(first)
	require.Equal(t, first.resp.GetNodeId(), hello.GetNodeId())

	// The same key (an agent whose certificate expired while it was
	// offline) with a new token: same node, labels from the first token only.
	second, err := e.enrollWith(e.token(1, time.Hour, map[string]string{"zone": "b"}), "web-1", first.key)
	require.NoError(t, err)
	require.Equal(t, first.resp.GetNodeId(), second.resp.GetNodeId(), "re-enrollment must keep the node ID")
	require.Equal(t, map[string]string{"env": "prod"}, second.resp.GetLabels(), "a later token never changes labels")

	require.Contains(t, goodbye(t, s).GetReason(), "identity retired")

	old, err := e.tryConnect(first.tlsCrt)
	if err == nil {
		_, err = old.Recv()
	}
	requireCode(t, err, codes.Unauthenticated, "retired")

	_, hello = e.connect(second)
	require.Equal(t, first.resp.GetNodeId(), hello.GetNodeId())
	n := e.node("web-1")
	require.EqualValues(t, 2, n.GetEnrollments())
	require.Equal(t, n.GetEnrolledAt().AsTime(), e.node(first.resp.GetNodeId()).GetEnrolledAt().AsTime())
	require.True(t, n.GetLastEnrolledAt().AsTime().After(n.GetEnrolledAt().AsTime()))
}

func TestHeartbeatsDriveState(t *testing.T) {
	interval := 200 * time.Millisecond
	e := startEnv(t, func(c *Config) { c.HeartbeatInterval = interval })
	id := e.mustEnroll(e.token(1, time.Hour, nil), "n1")
	require.Equal(t, forlockv1.NodeState_NODE_STATE_ENROLLED, e.node("n1").GetState())

	s, hello := e.connect(id)
	require.Equal(t, interval, hello.GetHeartbeatInterval().AsDuration())
	// The last heartbeat is received after silentFrom, so the node cannot
	// be unreachable before silentFrom + 3 intervals (taking the time after
	// the ONLINE wait undercounted on a loaded machine: 576ms < 600ms).
	silentFrom := time.Now()
	heartbeat(t, s, 1)
	e.waitState("n1", forlockv1.NodeState_NODE_STATE_ONLINE, time.Second)

	// Keep the stream open but stop heartbeating: unreachable after three
	// intervals, not before.
	e.waitState("n1", forlockv1.NodeState_NODE_STATE_UNREACHABLE, 10*interval)
	require.GreaterOrEqual(t, time.Since(silentFrom), 3*interval)
	n := e.node("n1")
	require.True(t, n.GetConnected(), "the stream is still open: unreachable says nothing about it")

	heartbeat(t, s, 2)
	e.waitState("n1", forlockv1.NodeState_NODE_STATE_ONLINE, time.Second)

	// Pings flow on the control stream and the round trip of the latest one
	// is recorded. Older pings queued while we were not reading are stale.
	deadline := time.Now().Add(5 * time.Second)
	for e.node("n1").GetLastPingRtt() == nil {
		require.True(t, time.Now().Before(deadline), "no ping round trip recorded")
		m, err := s.Recv()
		require.NoError(t, err)
		if p := m.GetPing(); p != nil {
			require.NoError(t, s.Send(&forlockv1.ConnectRequest{Msg: &forlockv1.ConnectRequest_Pong{Pong: &forlockv1.Pong{Nonce: p.GetNonce()}}}))
			time.Sleep(20 * time.Millisecond)
		}
	}
	require.Less(t, e.node("n1").GetLastPingRtt().AsDuration(), time.Second)

	// A goodbye makes the node offline at once.
	require.NoError(t, s.Send(&forlockv1.ConnectRequest{Msg: &forlockv1.ConnectRequest_Goodbye{Goodbye: &forlockv1.Goodbye{Reason: "test"}}}))
	for {
		if _, err := s.Recv(); err != nil {
			require.ErrorIs(t, err, io.EOF)
			break
		}
	}
	e.waitState("n1", forlockv1.NodeState_NODE_STATE_OFFLINE, time.Second)
	require.False(t, e.node("n1").GetConnected())
}

func TestRestartKeepsRegistry(t *testing.T) {
	e := startEnv(t, nil)
	id := e.mustEnroll(e.token(1, time.Hour, map[string]string{"role": "db"}), "db-1")
	s, _ := e.connect(id)
	heartbeat(t, s, 1)
	e.waitState("db-1", forlockv1.NodeState_NODE_STATE_ONLINE, time.Second)
	e.stop()

	// The agent is told goodbye by the stopping server.
	var sawGoodbye bool
	for {
		m, err := s.Recv()
		if err != nil {
			break
		}
		sawGoodbye = sawGoodbye || m.GetGoodbye() != nil
	}
	require.True(t, sawGoodbye)

	e2 := startEnvIn(t, e.dir, nil)
	n := e2.node("db-1")
	require.Equal(t, id.resp.GetNodeId(), n.GetId())
	require.Equal(t, map[string]string{"role": "db"}, n.GetLabels())
	_, hello := e2.connect(id) // the same certificate still works
	require.Equal(t, id.resp.GetNodeId(), hello.GetNodeId())
	e2.waitState("db-1", forlockv1.NodeState_NODE_STATE_ONLINE, time.Second)
}

func TestListNodesFilters(t *testing.T) {
	e := startEnv(t, nil)
	a := e.mustEnroll(e.token(1, time.Hour, map[string]string{"env": "prod"}), "a")
	e.mustEnroll(e.token(1, time.Hour, map[string]string{"env": "dev"}), "b")
	s, _ := e.connect(a)
	heartbeat(t, s, 1)
	e.waitState("a", forlockv1.NodeState_NODE_STATE_ONLINE, time.Second)

	names := func(req *forlockv1.ListNodesRequest) []string {
		resp, err := e.nodes.ListNodes(e.admin(), req)
		require.NoError(t, err)
		var out []string
		for _, n := range resp.GetNodes() {
			out = append(out, n.GetName())
		}
		return out
	}
	require.Equal(t, []string{"a", "b"}, names(&forlockv1.ListNodesRequest{}))
	require.Equal(t, []string{"b"}, names(&forlockv1.ListNodesRequest{LabelSelector: "env!=prod"}))
	require.Equal(t, []string{"a"}, names(&forlockv1.ListNodesRequest{States: []forlockv1.NodeState{forlockv1.NodeState_NODE_STATE_ONLINE}}))
	_, err := e.nodes.ListNodes(e.admin(), &forlockv1.ListNodesRequest{LabelSelector: "Env=="})
	requireCode(t, err, codes.InvalidArgument, "selector")
	_, err = e.nodes.GetNode(e.admin(), &forlockv1.GetNodeRequest{Node: "nope"})
	requireCode(t, err, codes.NotFound, "nodes list")
}

func TestAdminTokenRequired(t *testing.T) {
	e := startEnv(t, nil)
	_, err := e.nodes.ListNodes(context.Background(), &forlockv1.ListNodesRequest{})
	requireCode(t, err, codes.Unauthenticated, "missing admin token")
	e.adminMD.Set("authorization", "Bearer fat_"+string(make([]byte, 0))+"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	_, err = e.nodes.ListNodes(e.admin(), &forlockv1.ListNodesRequest{})
	requireCode(t, err, codes.Unauthenticated, "refused")
}
