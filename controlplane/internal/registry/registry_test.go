package registry

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/forlock/fleet/controlplane/internal/enroll"
	"github.com/forlock/fleet/controlplane/internal/store"
	"github.com/forlock/fleet/internal/labels"
	"github.com/forlock/fleet/internal/pki"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

const interval = time.Minute

// fleet is a registry over a real bbolt store with nodes enrolled in it;
// each node's first certificate has serial "<name>-1".
type fleet struct {
	t     *testing.T
	st    *store.Store
	reg   *Registry
	nodes map[string]store.Node
}

func newFleet(t *testing.T, names ...string) *fleet {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "registry.db"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	f := &fleet{t: t, st: st, nodes: map[string]store.Node{}}
	for _, name := range names {
		f.enroll(name, "")
	}
	f.reg, err = New(st, interval, slog.New(slog.NewTextHandler(io.Discard, nil)))
	require.NoError(t, err)
	return f
}

// enroll enrolls name with a fresh token and key, or (forNode set) as a
// replacement host of that node ID, and tells the registry if it runs.
func (f *fleet) enroll(name, forNode string) store.Node {
	f.t.Helper()
	now := time.Now()
	n := len(f.nodes) + 1
	tok := store.JoinToken{ID: name + "-tok" + string(rune('0'+n)), Hash: []byte(name), CreatedAt: now, ExpiresAt: now.Add(time.Hour), MaxUses: 1}
	if forNode != "" {
		tok.ID, tok.ForNodeName, tok.ForNodeID = name+"-repl", name, forNode
	}
	require.NoError(f.t, f.st.CreateToken(tok))
	res, err := f.st.Enroll(context.Background(), store.EnrollParams{TokenID: tok.ID, TokenHash: tok.Hash, Name: name, KeyID: "key-" + tok.ID, Now: now,
		NewID: func() string { return "id-" + name }},
		func(n store.Node) (store.Issued, error) {
			return store.Issued{Serial: name + "-" + string(rune('0'+n.Epoch)), NotAfter: now.Add(time.Hour)}, nil
		})
	require.NoError(f.t, err)
	f.nodes[name] = res.Node
	if f.reg != nil {
		f.reg.Enrolled(res.Node)
	}
	return res.Node
}

func (f *fleet) id(name string) pki.NodeID {
	n := f.nodes[name]
	return pki.NodeID{ID: n.ID, Epoch: n.Epoch}
}

func (f *fleet) attach(name string) *Session {
	f.t.Helper()
	s, err := f.reg.Attach(f.id(name), f.nodes[name].CertSerial, &forlockv1.AgentHello{AgentVersion: "1.2.3", Capabilities: []string{"tasks"},
		Facts: &forlockv1.HostFacts{Hostname: name}})
	require.NoError(f.t, err)
	return s
}

func (f *fleet) view(name string) *forlockv1.Node {
	f.t.Helper()
	n, ok := f.reg.Get(f.nodes[name].ID)
	require.True(f.t, ok, name)
	return n
}

// stored is the node's state as written to the store.
func (f *fleet) stored(name string) store.State {
	f.t.Helper()
	nodes, err := f.st.Nodes()
	require.NoError(f.t, err)
	for _, n := range nodes {
		if n.Name == name {
			return n.State
		}
	}
	f.t.Fatalf("node %s not stored", name)
	return ""
}

func closed(s *Session) bool {
	select {
	case <-s.Done():
		return true
	default:
		return false
	}
}

// TestAttachDetach: a session makes its node online, goes with its stream,
// and only a goodbye makes the node offline; a dropped stream leaves it
// online until heartbeats are missed. The state reaches the store on flush.
func TestAttachDetach(t *testing.T) {
	f := newFleet(t, "web-1")
	require.Equal(t, forlockv1.NodeState_NODE_STATE_ENROLLED, f.view("web-1").GetState())

	s := f.attach("web-1")
	v := f.view("web-1")
	require.Equal(t, forlockv1.NodeState_NODE_STATE_ONLINE, v.GetState())
	require.True(t, v.GetConnected())
	require.Equal(t, "1.2.3", v.GetAgentVersion())
	require.Equal(t, []string{"tasks"}, v.GetCapabilities())
	require.Equal(t, "web-1", v.GetFacts().GetHostname())
	require.NotNil(t, v.GetLastHeartbeatAt())
	require.Same(t, s, f.reg.Session(f.nodes["web-1"].ID))
	require.Equal(t, store.StateEnrolled, f.stored("web-1"), "not written before a flush")
	require.NoError(t, f.reg.flush())
	require.Equal(t, store.StateOnline, f.stored("web-1"))

	f.reg.Detach(s, false)
	require.True(t, closed(s))
	require.Equal(t, "stream closed", s.Reason())
	require.False(t, s.Send(&forlockv1.ConnectResponse{}), "a closed session takes nothing")
	require.Nil(t, f.reg.Session(f.nodes["web-1"].ID))
	v = f.view("web-1")
	require.False(t, v.GetConnected())
	require.Equal(t, forlockv1.NodeState_NODE_STATE_ONLINE, v.GetState(), "a dropped stream is noticed by missed heartbeats only")

	s = f.attach("web-1")
	f.reg.Detach(s, true)
	require.Equal(t, forlockv1.NodeState_NODE_STATE_OFFLINE, f.view("web-1").GetState())
	require.NoError(t, f.reg.flush())
	nodes, err := f.st.Nodes()
	require.NoError(t, err)
	require.Equal(t, store.StateOffline, nodes[0].State)
	require.Equal(t, "1.2.3", nodes[0].AgentVersion)
}

// TestAttachRefused: only a registered node's current identity with a
// certificate that may speak for it gets a session.
func TestAttachRefused(t *testing.T) {
	f := newFleet(t, "web-1")
	hello := &forlockv1.AgentHello{}
	id := f.id("web-1")
	serial := f.nodes["web-1"].CertSerial
	for name, tc := range map[string]struct {
		id     pki.NodeID
		serial string
		err    error
	}{
		"unknown node": {pki.NodeID{ID: "id-nope", Epoch: 1}, serial, ErrUnknownNode},
		"older epoch":  {pki.NodeID{ID: id.ID, Epoch: id.Epoch - 1}, serial, ErrRetired},
		"newer epoch":  {pki.NodeID{ID: id.ID, Epoch: id.Epoch + 1}, serial, ErrRetired},
		"other serial": {id, "web-1-9", enroll.ErrSuperseded},
		"empty serial": {id, "", enroll.ErrSuperseded},
		"current":      {id, serial, nil},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := f.reg.Attach(tc.id, tc.serial, hello)
			require.ErrorIs(t, err, tc.err)
			require.ErrorIs(t, f.reg.Authorize(tc.id, tc.serial), tc.err)
		})
	}
}

// TestNewestSessionWins: a second connection of the same node replaces the
// first; the replaced one can no longer change anything.
func TestNewestSessionWins(t *testing.T) {
	f := newFleet(t, "web-1")
	old := f.attach("web-1")
	cur := f.attach("web-1")
	require.True(t, closed(old))
	require.Equal(t, "replaced by a newer connection from the same node", old.Reason())
	require.False(t, closed(cur))
	require.Same(t, cur, f.reg.Session(f.nodes["web-1"].ID))

	// The old stream's late heartbeat and detach touch nothing.
	f.reg.Heartbeat(old, &forlockv1.HostFacts{Hostname: "stale"}, nil)
	f.reg.Detach(old, true)
	v := f.view("web-1")
	require.True(t, v.GetConnected())
	require.Equal(t, forlockv1.NodeState_NODE_STATE_ONLINE, v.GetState())
	require.Equal(t, "web-1", v.GetFacts().GetHostname())
	require.False(t, closed(cur))
}

// TestUnreachableAfterMissedHeartbeats: a node is online until
// MissedHeartbeats intervals pass without a heartbeat, then unreachable
// (still connected: nothing is torn down), and a heartbeat brings it back.
func TestUnreachableAfterMissedHeartbeats(t *testing.T) {
	f := newFleet(t, "web-1", "web-2")
	s1 := f.attach("web-1")
	f.attach("web-2")
	base := time.Now()
	deadline := MissedHeartbeats * interval

	f.reg.sweep(base.Add(deadline - time.Second))
	require.Equal(t, forlockv1.NodeState_NODE_STATE_ONLINE, f.view("web-1").GetState())

	// web-2 beats at base+2 intervals; web-1 never does.
	f.reg.mu.Lock()
	f.reg.nodes[f.nodes["web-2"].ID].lastHeartbeat = base.Add(2 * interval)
	f.reg.mu.Unlock()
	f.reg.sweep(base.Add(deadline + time.Second))
	require.Equal(t, forlockv1.NodeState_NODE_STATE_UNREACHABLE, f.view("web-1").GetState())
	require.True(t, f.view("web-1").GetConnected())
	require.False(t, closed(s1))
	require.Equal(t, forlockv1.NodeState_NODE_STATE_ONLINE, f.view("web-2").GetState())
	require.NoError(t, f.reg.flush())
	require.Equal(t, store.StateUnreachable, f.stored("web-1"))

	health := &forlockv1.HealthReport{Checks: []*forlockv1.CheckResult{{Name: "api"}}}
	f.reg.Heartbeat(s1, &forlockv1.HostFacts{Hostname: "web-1b"}, health)
	v := f.view("web-1")
	require.Equal(t, forlockv1.NodeState_NODE_STATE_ONLINE, v.GetState())
	require.Equal(t, "web-1b", v.GetFacts().GetHostname())
	require.Equal(t, "api", v.GetHealth().GetChecks()[0].GetName())
	// A heartbeat without facts keeps the last ones.
	f.reg.Heartbeat(s1, nil, nil)
	require.Equal(t, "web-1b", f.view("web-1").GetFacts().GetHostname())
	require.Equal(t, "api", f.view("web-1").GetHealth().GetChecks()[0].GetName())
}

// TestRestartGrace: a node stored online gets MissedHeartbeats intervals
// from the registry's start to reconnect before it is unreachable.
func TestRestartGrace(t *testing.T) {
	f := newFleet(t, "web-1")
	f.attach("web-1")
	require.NoError(t, f.reg.flush())
	reg, err := New(f.st, interval, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	id := f.nodes["web-1"].ID
	v, _ := reg.Get(id)
	require.Equal(t, forlockv1.NodeState_NODE_STATE_ONLINE, v.GetState())
	require.False(t, v.GetConnected())

	reg.sweep(reg.started.Add(MissedHeartbeats*interval - time.Second))
	v, _ = reg.Get(id)
	require.Equal(t, forlockv1.NodeState_NODE_STATE_ONLINE, v.GetState())
	reg.sweep(reg.started.Add(MissedHeartbeats*interval + time.Second))
	v, _ = reg.Get(id)
	require.Equal(t, forlockv1.NodeState_NODE_STATE_UNREACHABLE, v.GetState())
}

// TestRunSweeps: Run marks a silent node unreachable on its own and writes
// it to the store, and flushes once more when it stops.
func TestRunSweeps(t *testing.T) {
	f := newFleet(t, "web-1")
	f.reg.interval = 10 * time.Millisecond
	f.attach("web-1")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.reg.Run(ctx) }()
	require.Eventually(t, func() bool { return f.stored("web-1") == store.StateUnreachable }, 5*time.Second, 5*time.Millisecond)
	s := f.attach("web-1") // online again, in memory only until a flush
	f.reg.Detach(s, true)
	cancel()
	require.NoError(t, <-done)
	require.Equal(t, store.StateOffline, f.stored("web-1"))
}

// TestFindSelectList: nodes are found by name or ID, a name first;
// selections and lists are ordered by name and filtered by labels and
// states.
func TestFindSelectList(t *testing.T) {
	f := newFleet(t, "web-2", "web-1", "db-1")
	for _, ref := range []string{"web-1", "id-web-1"} {
		tg, err := f.reg.Find(ref)
		require.NoError(t, err)
		require.Equal(t, Target{ID: "id-web-1", Name: "web-1"}, tg)
	}
	_, err := f.reg.Find("")
	require.ErrorIs(t, err, store.ErrNodeNotFound)
	require.ErrorIs(t, err, store.ErrNotFound)

	all := f.reg.Select(labels.Selector{})
	require.Equal(t, []Target{{"id-db-1", "db-1"}, {"id-web-1", "web-1"}, {"id-web-2", "web-2"}}, all)

	f.attach("web-2")
	online := f.reg.List(labels.Selector{}, []forlockv1.NodeState{forlockv1.NodeState_NODE_STATE_ONLINE})
	require.Len(t, online, 1)
	require.Equal(t, "web-2", online[0].GetName())
	require.Len(t, f.reg.List(labels.Selector{}, nil), 3)
	sel, err := labels.ParseSelector("nope=1")
	require.NoError(t, err)
	require.Empty(t, f.reg.List(sel, nil))
	require.Empty(t, f.reg.Select(sel))
}

// failingStore fails SaveStates while fail is set; otherwise it is the
// real store.
type failingStore struct {
	*store.Store
	fail bool
}

func (s *failingStore) SaveStates(c []store.StateChange) error {
	if s.fail {
		return errors.New("disk on fire")
	}
	return s.Store.SaveStates(c)
}

// TestFlushRetries: state changes a failed flush could not write are kept
// and written by the next one.
func TestFlushRetries(t *testing.T) {
	f := newFleet(t, "web-1")
	fs := &failingStore{Store: f.st, fail: true}
	reg, err := New(fs, interval, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	n := f.nodes["web-1"]
	_, err = reg.Attach(pki.NodeID{ID: n.ID, Epoch: n.Epoch}, n.CertSerial, &forlockv1.AgentHello{})
	require.NoError(t, err)
	require.ErrorContains(t, reg.flush(), "disk on fire")
	require.Equal(t, store.StateEnrolled, f.stored("web-1"))
	fs.fail = false
	require.NoError(t, reg.flush())
	require.Equal(t, store.StateOnline, f.stored("web-1"))
}

// TestPong: the ping round trip is recorded for the session's last ping
// only.
func TestPong(t *testing.T) {
	f := newFleet(t, "web-1")
	s := f.attach("web-1")
	s.PingSent(7, time.Now().Add(-40*time.Millisecond))
	f.reg.Pong(s, 6) // an older ping's answer
	require.Nil(t, f.view("web-1").GetLastPingRtt())
	f.reg.Pong(s, 7)
	rtt := f.view("web-1").GetLastPingRtt().AsDuration()
	require.GreaterOrEqual(t, rtt, 40*time.Millisecond)
	require.True(t, s.Can("tasks"))
	require.False(t, s.Can("logs"))
}
