package registry

import (
	"maps"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/forlock/fleet/controlplane/internal/store"
	"github.com/forlock/fleet/internal/labels"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

var stateToProto = map[store.State]forlockv1.NodeState{
	store.StateEnrolled:    forlockv1.NodeState_NODE_STATE_ENROLLED,
	store.StateOnline:      forlockv1.NodeState_NODE_STATE_ONLINE,
	store.StateUnreachable: forlockv1.NodeState_NODE_STATE_UNREACHABLE,
	store.StateOffline:     forlockv1.NodeState_NODE_STATE_OFFLINE,
}

// Get returns the API view of one node.
func (r *Registry) Get(id string) (*forlockv1.Node, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	e, ok := r.nodes[id]
	if !ok {
		return nil, false
	}
	return e.view(), true
}

// List returns the nodes matching sel and, if states is not empty, in one of
// those states, ordered by name.
func (r *Registry) List(sel labels.Selector, states []forlockv1.NodeState) []*forlockv1.Node {
	r.mu.RLock()
	out := make([]*forlockv1.Node, 0, len(r.nodes))
	for _, e := range r.nodes {
		if !sel.Matches(e.node.Labels) {
			continue
		}
		if len(states) > 0 && !slices.Contains(states, stateToProto[e.node.State]) {
			continue
		}
		out = append(out, e.view())
	}
	r.mu.RUnlock()
	slices.SortFunc(out, func(a, b *forlockv1.Node) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// view builds the API message; callers hold r.mu.
func (e *entry) view() *forlockv1.Node {
	n := &forlockv1.Node{
		Id:                  e.node.ID,
		Name:                e.node.Name,
		Labels:              maps.Clone(e.node.Labels),
		State:               stateToProto[e.node.State],
		StateChangedAt:      timestamppb.New(e.node.StateChangedAt),
		EnrolledAt:          timestamppb.New(e.node.EnrolledAt),
		LastEnrolledAt:      timestamppb.New(e.node.LastEnrolledAt),
		Enrollments:         e.node.Enrollments,
		AgentVersion:        e.node.AgentVersion,
		Capabilities:        slices.Clone(e.capabilities),
		Connected:           e.session != nil,
		CertificateNotAfter: timestamppb.New(e.node.CertNotAfter),
		CertificateSerial:   e.node.CertSerial,
	}
	if e.node.Quarantined() {
		n.Quarantined, n.QuarantineReason = true, e.node.QuarantineReason
		n.QuarantinedAt = timestamppb.New(e.node.QuarantinedAt)
	}
	if e.facts != nil {
		n.Facts = proto.CloneOf(e.facts)
	}
	if e.health != nil {
		n.Health = proto.CloneOf(e.health)
	}
	if e.archive != nil {
		if n.Health == nil {
			n.Health = &forlockv1.HealthReport{}
		}
		n.Health.Checks = append(n.Health.Checks, proto.CloneOf(e.archive))
	}
	if !e.lastHeartbeat.IsZero() {
		n.LastHeartbeatAt = timestamppb.New(e.lastHeartbeat)
	}
	if !e.lastPingAt.IsZero() {
		n.LastPingRtt = durationpb.New(e.pingRTT)
		n.LastPingAt = timestamppb.New(e.lastPingAt)
	}
	return n
}

// Sample is what the metrics collector reads of one node. Its messages are
// shared, not copied: the registry replaces them on a heartbeat and never
// changes one in place, so a reader must not change them either.
type Sample struct {
	ID, Name      string
	State         store.State
	LastHeartbeat time.Time // zero until the node's first heartbeat since start-up
	Facts         *forlockv1.HostFacts
	Health        *forlockv1.HealthReport
	Archive       *forlockv1.CheckResult // the WAL archiver's check, nil if none
	// Labels are the node's labels; shared with the registry, so read only.
	Labels map[string]string
}

// Samples returns every node's Sample. It holds the read lock only to copy
// pointers, so a scrape of a large fleet does not hold up heartbeats.
func (r *Registry) Samples() []Sample {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]Sample, 0, len(r.nodes))
	for _, e := range r.nodes {
		out = append(out, Sample{ID: e.node.ID, Name: e.node.Name, State: e.node.State, LastHeartbeat: e.lastHeartbeat,
			Facts: e.facts, Health: e.health, Archive: e.archive, Labels: e.node.Labels})
	}
	return out
}
