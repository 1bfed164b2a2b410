package jobs

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/forlock/fleet/controlplane/internal/registry"
	"github.com/forlock/fleet/controlplane/internal/store"
	"github.com/forlock/fleet/internal/pki"
	"github.com/forlock/fleet/internal/protocol"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// fleet is a job engine on a real bbolt store with real registry sessions:
// the agents are played by the test.
type fleet struct {
	t     *testing.T
	st    *store.Store
	reg   *registry.Registry
	e     *Engine
	nodes map[string]store.Node
}

func newFleet(t *testing.T, limits Limits, names ...string) *fleet {
	t.Helper()
	return startFleet(t, enrolledStore(t, names...), Config{Limits: limits})
}

// enrolledStore is a real store in t.TempDir() with the named nodes
// enrolled (node IDs "id-<name>", keys "key-<name>").
func enrolledStore(t *testing.T, names ...string) *store.Store {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "fleet.db"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	now := time.Now()
	tok := store.JoinToken{ID: "aaaaaaaaaaaa", Hash: []byte("h"), CreatedAt: now, ExpiresAt: now.Add(time.Hour), MaxUses: 100}
	require.NoError(t, st.CreateToken(tok))
	for _, name := range names {
		_, err := st.Enroll(context.Background(), store.EnrollParams{TokenID: tok.ID, TokenHash: tok.Hash, Name: name, KeyID: "key-" + name, Now: now, NewID: func() string { return "id-" + name }},
			func(store.Node) (store.Issued, error) {
				return store.Issued{Serial: name, NotAfter: now.Add(time.Hour)}, nil
			})
		require.NoError(t, err)
	}
	return st
}

// startFleet starts a registry and an engine (cfg with its store and
// registry set) on an open store and its enrolled nodes.
func startFleet(t *testing.T, st *store.Store, cfg Config) *fleet {
	t.Helper()
	f := &fleet{t: t, st: st, nodes: map[string]store.Node{}}
	nodes, err := st.Nodes()
	require.NoError(t, err)
	for _, n := range nodes {
		f.nodes[n.Name] = n
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	f.reg, err = registry.New(st, time.Hour, log)
	require.NoError(t, err)
	cfg.Store, cfg.Registry, cfg.Logger = st, f.reg, log
	f.e, err = New(cfg)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.e.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	return f
}

// connect opens a session for a node, as the Connect handler does.
func (f *fleet) connect(name string) *registry.Session {
	f.t.Helper()
	n := f.nodes[name]
	s, err := f.reg.Attach(pki.NodeID{ID: n.ID, Epoch: n.Epoch}, n.CertSerial, &forlockv1.AgentHello{Capabilities: []string{string(protocol.CapabilityTasks)}})
	require.NoError(f.t, err)
	f.e.NodeConnected(s)
	return s
}

// submit runs a health check on one node and returns its task ID.
func (f *fleet) submit(node string) (jobID, taskID string) {
	f.t.Helper()
	j, _, err := f.e.Submit(context.Background(), &forlockv1.SubmitJobRequest{
		Spec:   &forlockv1.JobSpec{Kind: &forlockv1.JobSpec_HealthCheck{HealthCheck: &forlockv1.HealthCheckSpec{}}},
		Target: &forlockv1.Target{Nodes: []string{node}},
	})
	require.NoError(f.t, err)
	return j.GetId(), j.GetTasks()[0].GetId()
}

func (f *fleet) taskState(jobID string) forlockv1.TaskState {
	f.t.Helper()
	j, err := f.e.Get(jobID)
	require.NoError(f.t, err)
	return j.GetTasks()[0].GetState()
}

// running waits until the task is dispatched, then reports it running.
func (f *fleet) running(s *registry.Session, jobID, taskID string) {
	f.t.Helper()
	require.Eventually(f.t, func() bool { return f.taskState(jobID) == forlockv1.TaskState_TASK_STATE_DISPATCHED }, 5*time.Second, 5*time.Millisecond)
	f.e.TaskUpdate(s, &forlockv1.TaskUpdate{TaskId: taskID, State: forlockv1.TaskState_TASK_STATE_RUNNING})
	require.Equal(f.t, forlockv1.TaskState_TASK_STATE_RUNNING, f.taskState(jobID))
}

// ended waits until the job has left memory: the store answers for it.
func (f *fleet) ended(jobID string) {
	f.t.Helper()
	require.Eventually(f.t, func() bool {
		f.e.mu.Lock()
		defer f.e.mu.Unlock()
		_, active := f.e.jobs[jobID]
		return !active
	}, 5*time.Second, 5*time.Millisecond)
}

// flush waits until everything queued so far is committed.
func (f *fleet) flush() {
	f.t.Helper()
	done := make(chan struct{})
	f.e.mu.Lock()
	f.e.afterCommit(func() { close(done) })
	f.e.mu.Unlock()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		f.t.Fatal("no commit within 5s")
	}
}

// acks drains a session's queue and returns the task IDs acknowledged.
func acks(s *registry.Session) []string {
	var out []string
	for {
		select {
		case m := <-s.Outbox():
			if a := m.GetTaskAck(); a != nil {
				out = append(out, a.GetTaskId())
			}
		default:
			return out
		}
	}
}

func update(taskID string, state forlockv1.TaskState, msg string) *forlockv1.TaskUpdate {
	u := &forlockv1.TaskUpdate{TaskId: taskID, State: state, Message: msg}
	if state == forlockv1.TaskState_TASK_STATE_RUNNING {
		u.Progress = &forlockv1.Progress{Phase: "p", Message: msg}
	}
	return u
}
