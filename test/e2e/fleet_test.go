package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/forlock/fleet/agent"
	"github.com/forlock/fleet/controlplane"
	"github.com/forlock/fleet/internal/ctlconfig"
	"github.com/forlock/fleet/internal/protocol"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
	"github.com/forlock/fleet/test/bridge"
)

// fleet is an in-process control plane with real agents, all on loopback.
type fleet struct {
	t      testing.TB
	cp     *controlplane.Server
	nodes  forlockv1.NodeServiceClient
	conn   *grpc.ClientConn
	token  string // admin
	caFile string
}

func quiet() *slog.Logger {
	if os.Getenv("E2E_VERBOSE") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func newFleet(tb testing.TB, mod func(*controlplane.Config)) *fleet {
	tb.Helper()
	t := tb
	cfg := controlplane.Config{DataDir: filepath.Join(t.TempDir(), "cp"), Listen: "127.0.0.1:0",
		HeartbeatInterval: 200 * time.Millisecond, Logger: quiet()}
	if mod != nil {
		mod(&cfg)
	}
	cp, err := controlplane.New(cfg)
	require.NoError(t, err)
	f := &fleet{t: t, cp: cp, caFile: cp.CAFile()}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cp.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})

	file, err := ctlconfig.Load(cp.CtlConfigFile())
	require.NoError(t, err)
	c, err := file.Context("")
	require.NoError(t, err)
	f.token = c.Token
	caPEM, err := os.ReadFile(c.CAFile)
	require.NoError(t, err)
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(caPEM))
	conn, err := grpc.NewClient(cp.Addr().String(), grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13, ServerName: "127.0.0.1"})))
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	f.conn = conn
	f.nodes = forlockv1.NewNodeServiceClient(conn)
	return f
}

func (f *fleet) admin() context.Context {
	ctx, cancel := context.WithTimeout(metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+f.token), 10*time.Second)
	f.t.Cleanup(cancel)
	return ctx
}

func (f *fleet) joinToken(uses uint32) string {
	f.t.Helper()
	resp, err := f.nodes.CreateJoinToken(f.admin(), &forlockv1.CreateJoinTokenRequest{MaxUses: uses, Ttl: durationpb.New(time.Hour)})
	require.NoError(f.t, err)
	return resp.GetSecret()
}

// startAgent runs an in-process agent against addr (the control plane or a
// bridge in front of it) until the test ends.
func (f *fleet) startAgent(name, addr, token string) *agent.Agent {
	f.t.Helper()
	return f.runAgent(agentOpts{name: name, addr: addr, token: token}).Agent
}

type agentOpts struct {
	name, addr, token, stateDir string
	handlers                    map[protocol.Kind]agent.TaskHandler
}

// runningAgent is an in-process agent that a test can stop and start again.
type runningAgent struct {
	*agent.Agent
	stop func()
}

func (f *fleet) runAgent(o agentOpts) *runningAgent {
	f.t.Helper()
	if o.addr == "" {
		o.addr = f.cp.Addr().String()
	}
	if o.stateDir == "" {
		o.stateDir = filepath.Join(f.t.TempDir(), o.name)
	}
	a, err := agent.New(agent.Config{
		ControlPlane: o.addr, CAFile: f.caFile, JoinToken: o.token, Name: o.name,
		StateDir: o.stateDir, Logger: quiet(), TaskHandlers: o.handlers,
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 300 * time.Millisecond,
	})
	require.NoError(f.t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			require.NoError(f.t, <-done)
		})
	}
	f.t.Cleanup(stop)
	return &runningAgent{Agent: a, stop: stop}
}

func (f *fleet) node(name string) *forlockv1.Node {
	f.t.Helper()
	resp, err := f.nodes.GetNode(f.admin(), &forlockv1.GetNodeRequest{Node: name})
	require.NoError(f.t, err)
	return resp.GetNode()
}

func (f *fleet) waitState(name string, want forlockv1.NodeState, within time.Duration) {
	f.t.Helper()
	require.Eventually(f.t, func() bool {
		resp, err := f.nodes.GetNode(f.admin(), &forlockv1.GetNodeRequest{Node: name})
		return err == nil && resp.GetNode().GetState() == want
	}, within, 20*time.Millisecond, "node %s never reached %s", name, want)
}

func TestCertificateRenewedAndConnectionMovedOver(t *testing.T) {
	f := newFleet(t, func(c *controlplane.Config) { c.AgentCertTTL = 3 * time.Second })
	a := f.startAgent("renew-1", f.cp.Addr().String(), f.joinToken(1))
	require.Eventually(t, func() bool { return a.Stats().Connected }, 10*time.Second, 10*time.Millisecond)
	first := a.Stats()

	// Outlive two full certificate lifetimes: the agent must renew each time
	// before expiry, and move its connection to the new certificate (only
	// the newest one is accepted after a short grace) without the node ever
	// leaving ONLINE: no goodbye, no gap.
	serials := map[string]bool{first.CertSerial: true}
	deadline := time.Now().Add(7 * time.Second)
	for time.Now().Before(deadline) {
		s := a.Stats()
		serials[s.CertSerial] = true
		require.True(t, time.Now().Before(s.CertNotAfter.Add(time.Second)), "certificate expired before renewal")
		require.Equal(t, forlockv1.NodeState_NODE_STATE_ONLINE, f.node("renew-1").GetState())
		time.Sleep(50 * time.Millisecond)
	}
	last := a.Stats()
	renewals := len(serials) - 1
	require.GreaterOrEqual(t, renewals, 2, "expected at least two renewals in 7s with a 3s certificate")
	require.GreaterOrEqual(t, last.Sessions, first.Sessions+uint64(renewals)-1, "each renewal moves the stream to a new connection")
	require.Equal(t, first.NodeID, last.NodeID)
	require.EqualValues(t, 1, last.Enrollments)

	require.Eventually(t, func() bool {
		n := f.node("renew-1")
		return n.GetConnected() && a.Stats().CertSerial == n.GetCertificateSerial()
	}, 5*time.Second, 20*time.Millisecond, "the control plane records the newest certificate")
	require.Equal(t, forlockv1.NodeState_NODE_STATE_ONLINE, f.node("renew-1").GetState())
}

func TestPausedLinkMakesNodeUnreachableThenOnline(t *testing.T) {
	interval := 200 * time.Millisecond
	f := newFleet(t, func(c *controlplane.Config) { c.HeartbeatInterval = interval })
	b, err := bridge.New(f.cp.Addr().String())
	require.NoError(t, err)
	t.Cleanup(b.Close)
	a := f.startAgent("paused-1", b.Addr(), f.joinToken(1))
	f.waitState("paused-1", forlockv1.NodeState_NODE_STATE_ONLINE, 10*time.Second)

	b.Pause()
	paused := time.Now()
	f.waitState("paused-1", forlockv1.NodeState_NODE_STATE_UNREACHABLE, 20*interval)
	require.GreaterOrEqual(t, time.Since(paused), 3*interval, "unreachable only after three missed intervals")
	n := f.node("paused-1")
	require.Equal(t, a.Stats().NodeID, n.GetId(), "an unreachable node is kept, not removed")

	b.Resume()
	f.waitState("paused-1", forlockv1.NodeState_NODE_STATE_ONLINE, 10*time.Second)
}

func TestDroppedConnectionsReconnectWithSameID(t *testing.T) {
	f := newFleet(t, nil)
	b, err := bridge.New(f.cp.Addr().String())
	require.NoError(t, err)
	t.Cleanup(b.Close)
	a := f.startAgent("drop-1", b.Addr(), f.joinToken(1))
	require.Eventually(t, func() bool { return a.Stats().Connected }, 10*time.Second, 10*time.Millisecond)
	id := a.Stats().NodeID
	for i := range 3 {
		before := a.Stats().Sessions
		b.DropConnections()
		require.Eventually(t, func() bool { s := a.Stats(); return s.Connected && s.Sessions > before }, 10*time.Second, 10*time.Millisecond, "round %d", i)
	}
	require.Equal(t, id, a.Stats().NodeID)
	require.EqualValues(t, 1, a.Stats().Enrollments)
	require.True(t, f.node("drop-1").GetConnected())
}

func TestFleetOfAgents(t *testing.T) {
	const n = 30
	f := newFleet(t, nil)
	token := f.joinToken(n)
	agents := make([]*agent.Agent, n)
	for i := range agents {
		agents[i] = f.startAgent(fmt.Sprintf("fleet-%02d", i), f.cp.Addr().String(), token)
	}
	require.Eventually(t, func() bool {
		resp, err := f.nodes.ListNodes(f.admin(), &forlockv1.ListNodesRequest{States: []forlockv1.NodeState{forlockv1.NodeState_NODE_STATE_ONLINE}})
		return err == nil && len(resp.GetNodes()) == n
	}, 30*time.Second, 50*time.Millisecond)
	ids := map[string]bool{}
	for _, a := range agents {
		ids[a.NodeID()] = true
	}
	require.Len(t, ids, n, "every agent has its own node ID")
}
