// Package registry is the control plane's live view of the fleet: every
// node's durable record (loaded from the store) plus what only lives in
// memory: the open control session, the last heartbeat, host facts and the
// ping round trip.
//
// Heartbeats only touch memory. A sweeper marks nodes unreachable after three
// missed intervals and writes all state changes of a sweep in one batched
// store transaction, so the disk sees state changes, never heartbeats.
package registry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/forlock/fleet/controlplane/internal/enroll"
	"github.com/forlock/fleet/controlplane/internal/store"
	"github.com/forlock/fleet/internal/pki"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// MissedHeartbeats is how many intervals without a heartbeat make a node
// unreachable.
const MissedHeartbeats = 3

// Errors returned by Authorize and Attach. Their messages reach the agent.
var (
	ErrUnknownNode = errors.New("node is not registered (it was removed, or never enrolled here): give the agent a fresh join token to enroll again")
	ErrRetired     = errors.New("certificate belongs to a retired identity of this node (it enrolled again since): give the agent a fresh join token to enroll again")
	// ErrSuperseded wraps enroll.ErrSuperseded.
	ErrSuperseded = fmt.Errorf("%w, and its grace has ended: the node's own agent reconnects with its newest certificate, or re-enrolls with a fresh join token; anything else holding this certificate may have stolen it", enroll.ErrSuperseded)
)

// Store is what the registry needs of the durable state: the nodes to load
// at start-up, and a batched write of state changes.
type Store interface {
	Nodes() ([]store.Node, error)
	SaveStates(changes []store.StateChange) error
}

// Registry holds the live fleet. It is safe for concurrent use.
type Registry struct {
	store    Store
	interval time.Duration
	log      *slog.Logger
	started  time.Time

	mu     sync.RWMutex
	nodes  map[string]*entry
	byName map[string]string
	dirty  map[string]struct{}
	// restored is set on a control plane restored from a snapshot
	// (restored.go).
	restored *restored
}

type entry struct {
	node          store.Node
	session       *Session
	lastHeartbeat time.Time
	facts         *forlockv1.HostFacts
	health        *forlockv1.HealthReport
	capabilities  []string
	pingRTT       time.Duration
	lastPingAt    time.Time
	// archive is the WAL archiver's check, shown among the health checks.
	archive *forlockv1.CheckResult
}

// New loads every node from the store. Nodes recorded online get a grace
// period of three intervals from start-up to reconnect.
func New(st Store, interval time.Duration, log *slog.Logger) (*Registry, error) {
	nodes, err := st.Nodes()
	if err != nil {
		return nil, err
	}
	r := &Registry{
		store: st, interval: interval, log: log,
		nodes:   make(map[string]*entry, len(nodes)),
		byName:  make(map[string]string, len(nodes)),
		dirty:   map[string]struct{}{},
		started: time.Now(),
	}
	for _, n := range nodes {
		r.nodes[n.ID] = &entry{node: n}
		r.byName[n.Name] = n.ID
	}
	return r, nil
}

// Interval returns the heartbeat interval agents are told to use.
func (r *Registry) Interval() time.Duration { return r.interval }

// Authorize checks that a certificate speaks for a registered node: of its
// current epoch, not quarantined, and its newest certificate or the previous
// one within its grace (enroll.Certs).
func (r *Registry) Authorize(id pki.NodeID, serial string) error {
	r.mu.RLock()
	defer r.mu.RUnlock()
	e, ok := r.nodes[id.ID]
	if !ok {
		return ErrUnknownNode
	}
	return authorize(&e.node, id.Epoch, serial, time.Now())
}

func authorize(n *store.Node, epoch uint64, serial string, now time.Time) error {
	switch {
	case n.Epoch != epoch:
		return ErrRetired
	case n.Quarantined():
		return quarantined(n)
	case n.Certs().Check(serial, now) != nil:
		return ErrSuperseded
	}
	return nil
}

func quarantined(n *store.Node) error {
	return fmt.Errorf("%w since %s (%s): every certificate of it is refused; to let its host in again, create a token with 'forlockctl tokens create --for-node %s' and enroll the host with it",
		enroll.ErrQuarantined, n.QuarantinedAt.UTC().Format(time.RFC3339), n.QuarantineReason, n.Name)
}

// Quarantine records a node quarantined in the store and closes its session.
func (r *Registry) Quarantine(n store.Node) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.nodes[n.ID]
	if !ok {
		return
	}
	e.node.QuarantinedAt, e.node.QuarantineReason = n.QuarantinedAt, n.QuarantineReason
	if e.session != nil {
		e.session.close("node quarantined: " + n.QuarantineReason)
		e.session = nil
	}
}

// Enrolled records a node just (re-)enrolled in the store. A session of an
// older epoch is closed: that identity is retired.
func (r *Registry) Enrolled(n store.Node) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.nodes[n.ID]
	if !ok {
		r.nodes[n.ID] = &entry{node: n}
		r.byName[n.Name] = n.ID
		return
	}
	e.node.Epoch, e.node.Enrollments, e.node.LastEnrolledAt = n.Epoch, n.Enrollments, n.LastEnrolledAt
	e.node.Labels, e.node.KeyID = n.Labels, n.KeyID
	e.node.CertSerial, e.node.CertNotAfter, e.node.PrevCertSerial, e.node.PrevCertUntil = n.CertSerial, n.CertNotAfter, n.PrevCertSerial, n.PrevCertUntil
	e.node.QuarantinedAt, e.node.QuarantineReason = n.QuarantinedAt, n.QuarantineReason
	if e.session != nil && e.session.Epoch != n.Epoch {
		e.session.close("identity retired: the node enrolled again")
		e.session = nil
	}
}

// CertificateRenewed records a renewed certificate.
func (r *Registry) CertificateRenewed(n store.Node) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e, ok := r.nodes[n.ID]; ok && e.node.Epoch == n.Epoch {
		e.node.CertSerial, e.node.CertNotAfter, e.node.KeyID = n.CertSerial, n.CertNotAfter, n.KeyID
		e.node.PrevCertSerial, e.node.PrevCertUntil = n.PrevCertSerial, n.PrevCertUntil
	}
}

// Removed forgets a node deleted from the store and closes its session.
func (r *Registry) Removed(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.nodes[id]
	if !ok {
		return
	}
	if e.session != nil {
		e.session.close("node removed from the fleet")
	}
	delete(r.nodes, id)
	delete(r.byName, e.node.Name)
	delete(r.dirty, id)
}

// setState changes a node's state and marks it for the next flush. Callers
// hold r.mu.
func (r *Registry) setState(e *entry, s store.State, now time.Time) {
	if e.node.State == s {
		return
	}
	r.log.Info("node state changed", "node", e.node.Name, "node_id", e.node.ID, "from", e.node.State, "to", s)
	e.node.State, e.node.StateChangedAt = s, now
	r.dirty[e.node.ID] = struct{}{}
}

// Run sweeps for missed heartbeats and expired or superseded session
// certificates and
// flushes state changes until ctx ends, then flushes once more.
func (r *Registry) Run(ctx context.Context) error {
	tick := min(r.interval/2, time.Second)
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return r.flush()
		case now := <-t.C:
			r.sweep(now)
			if err := r.flush(); err != nil {
				r.log.Error("saving node states failed; will retry", "err", err)
			}
		}
	}
}

func (r *Registry) sweep(now time.Time) {
	deadline := time.Duration(MissedHeartbeats) * r.interval
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.nodes {
		last := e.lastHeartbeat
		if last.IsZero() {
			last = r.started // loaded from the store: grace from start-up
		}
		if e.node.State == store.StateOnline && now.Sub(last) > deadline {
			r.setState(e, store.StateUnreachable, now)
		}
		if e.session == nil {
			continue
		}
		switch {
		case now.After(e.node.CertNotAfter):
			e.session.close("client certificate expired")
			e.session = nil
		case e.node.Certs().Check(e.session.Serial, now) != nil:
			// Renewed, and the agent never moved over within the grace.
			e.session.close("client certificate superseded by a newer one: reconnect with the newest certificate")
			e.session = nil
		}
	}
}

func (r *Registry) flush() error {
	r.mu.Lock()
	changes := make([]store.StateChange, 0, len(r.dirty))
	for id := range r.dirty {
		e := r.nodes[id]
		changes = append(changes, store.StateChange{ID: id, State: e.node.State, At: e.node.StateChangedAt, AgentVersion: e.node.AgentVersion})
	}
	clear(r.dirty)
	r.mu.Unlock()
	if err := r.store.SaveStates(changes); err != nil {
		r.mu.Lock()
		for _, c := range changes {
			if _, ok := r.nodes[c.ID]; ok {
				r.dirty[c.ID] = struct{}{}
			}
		}
		r.mu.Unlock()
		return err
	}
	return nil
}

// SetCheck shows a check the control plane derives (the WAL archiver's
// state) among a node's health checks, replacing the previous one.
func (r *Registry) SetCheck(id string, c *forlockv1.CheckResult) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e, ok := r.nodes[id]; ok {
		e.archive = c
	}
}
