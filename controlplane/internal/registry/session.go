package registry

import (
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/forlock/fleet/controlplane/internal/store"
	"github.com/forlock/fleet/internal/labels"
	"github.com/forlock/fleet/internal/pki"
	"github.com/forlock/fleet/internal/protocol"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// Session is one open control stream of a node. The registry closes it when
// the node is removed, re-enrolls, is quarantined, reconnects elsewhere, or
// its certificate expires or is superseded (past its grace); the stream handler watches Done and ends the stream.
type Session struct {
	NodeID       string
	NodeName     string
	Epoch        uint64
	Serial       string // of the client certificate that opened the stream
	Capabilities []string

	out chan *forlockv1.ConnectResponse

	done   chan struct{}
	once   sync.Once
	reason atomic.Pointer[string]

	pingNonce  atomic.Uint64
	pingSentNs atomic.Int64
}

func (s *Session) close(reason string) {
	s.once.Do(func() {
		s.reason.Store(&reason)
		close(s.done)
	})
}

// outboxSize bounds the messages queued for one agent.
const outboxSize = 256

// Send queues a message for the agent without blocking. It reports false if
// the session has ended or its queue is full; the caller keeps the work and
// tries again later.
func (s *Session) Send(m *forlockv1.ConnectResponse) bool {
	select {
	case <-s.done:
		return false
	default:
	}
	select {
	case s.out <- m:
		return true
	default:
		return false
	}
}

// Outbox is drained by the stream handler, which owns every Send on the
// stream.
func (s *Session) Outbox() <-chan *forlockv1.ConnectResponse { return s.out }

// Can reports whether the agent announced a capability.
func (s *Session) Can(capability protocol.Capability) bool {
	return slices.Contains(s.Capabilities, string(capability))
}

// Done is closed when the registry ends the session.
func (s *Session) Done() <-chan struct{} { return s.done }

// Reason says why the registry ended the session.
func (s *Session) Reason() string {
	if p := s.reason.Load(); p != nil {
		return *p
	}
	return ""
}

// PingSent records the nonce and time of the ping just sent.
func (s *Session) PingSent(nonce uint64, at time.Time) {
	s.pingSentNs.Store(at.UnixNano())
	s.pingNonce.Store(nonce)
}

// Attach opens a session for an authorized node after its hello. Any older
// session of the node is closed: the newest connection wins.
func (r *Registry) Attach(id pki.NodeID, serial string, hello *forlockv1.AgentHello) (*Session, error) {
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.nodes[id.ID]
	if !ok {
		return nil, ErrUnknownNode
	}
	if err := authorize(&e.node, id.Epoch, serial, now); err != nil {
		return nil, err
	}
	if serial == e.node.CertSerial && e.node.PrevCertSerial != "" {
		// The agent has moved to its newest certificate: the previous one
		// needs no grace any more, and from now on only a copy of it could
		// call (kept in memory only: after a restart the grace, at most
		// minutes, runs to its end).
		e.node.PrevCertSerial, e.node.PrevCertUntil = "", time.Time{}
	}
	if e.session != nil {
		e.session.close("replaced by a newer connection from the same node")
	}
	s := &Session{
		NodeID: id.ID, NodeName: e.node.Name, Epoch: id.Epoch, Serial: serial, Capabilities: slices.Clone(hello.GetCapabilities()),
		out: make(chan *forlockv1.ConnectResponse, outboxSize), done: make(chan struct{}),
	}
	e.session = s
	e.lastHeartbeat = now
	e.facts = hello.GetFacts()
	e.capabilities = hello.GetCapabilities()
	if v := hello.GetAgentVersion(); v != e.node.AgentVersion {
		e.node.AgentVersion = v
		r.dirty[id.ID] = struct{}{}
	}
	r.setState(e, store.StateOnline, now)
	return s, nil
}

// Detach ends a session when its stream closes. The node's state does not
// change: a dropped stream is only noticed through missed heartbeats, unless
// the agent said goodbye.
func (r *Registry) Detach(s *Session, goodbye bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s.close("stream closed")
	e, ok := r.nodes[s.NodeID]
	if !ok || e.session != s {
		return
	}
	e.session = nil
	if goodbye {
		r.setState(e, store.StateOffline, time.Now())
	}
}

// Heartbeat records a heartbeat on a session, with the health report it
// carries, if any.
func (r *Registry) Heartbeat(s *Session, facts *forlockv1.HostFacts, health *forlockv1.HealthReport) {
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.nodes[s.NodeID]
	if !ok || e.session != s {
		return
	}
	e.lastHeartbeat = now
	if facts != nil {
		e.facts = facts
	}
	if health != nil {
		e.health = health
	}
	r.setState(e, store.StateOnline, now)
}

// Pong records the answer to the session's last ping.
func (r *Registry) Pong(s *Session, nonce uint64) {
	if nonce != s.pingNonce.Load() {
		return
	}
	now := time.Now()
	rtt := now.Sub(time.Unix(0, s.pingSentNs.Load()))
	r.mu.Lock()
	defer r.mu.Unlock()
	if e, ok := r.nodes[s.NodeID]; ok && e.session == s {
		e.pingRTT, e.lastPingAt = rtt, now
	}
}

// CloseAll ends every open session with the given reason.
func (r *Registry) CloseAll(reason string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.nodes {
		if e.session != nil {
			e.session.close(reason)
			e.session = nil
		}
	}
}

// Session returns the node's open session, or nil.
func (r *Registry) Session(nodeID string) *Session {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if e, ok := r.nodes[nodeID]; ok {
		return e.session
	}
	return nil
}

// Target is a node chosen for a job.
type Target struct {
	ID, Name string
}

// Select returns the nodes matching sel, ordered by name.
func (r *Registry) Select(sel labels.Selector) []Target {
	r.mu.RLock()
	out := make([]Target, 0, len(r.nodes))
	for _, e := range r.nodes {
		if sel.Matches(e.node.Labels) {
			out = append(out, Target{ID: e.node.ID, Name: e.node.Name})
		}
	}
	r.mu.RUnlock()
	slices.SortFunc(out, func(a, b Target) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Matches reports whether the node's labels match sel now (false for a
// node that no longer exists).
func (r *Registry) Matches(id string, sel labels.Selector) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	e, ok := r.nodes[id]
	return ok && sel.Matches(e.node.Labels)
}

// Find resolves a node name or ID (a name first), or returns
// store.NodeNotFound.
func (r *Registry) Find(ref string) (Target, error) {
	if t, ok := r.Lookup(ref); ok {
		return t, nil
	}
	return Target{}, store.NodeNotFound(ref)
}

// Lookup resolves a node name or ID (a name first).
func (r *Registry) Lookup(ref string) (Target, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	id, ok := r.byName[ref]
	if !ok {
		id = ref
	}
	e, ok := r.nodes[id]
	if !ok {
		return Target{}, false
	}
	return Target{ID: e.node.ID, Name: e.node.Name}, true
}
