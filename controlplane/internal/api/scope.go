package api

import (
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/forlock/fleet/controlplane/internal/access"
	"github.com/forlock/fleet/controlplane/internal/auth"
	"github.com/forlock/fleet/controlplane/internal/registry"
	"github.com/forlock/fleet/controlplane/internal/store"
	"github.com/forlock/fleet/internal/labels"
	"github.com/forlock/fleet/internal/protocol"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// nodeMatcher tells whether a node's labels match a selector now.
type nodeMatcher interface {
	Matches(id string, sel labels.Selector) bool
}

// scopeOf is the caller's scope; the zero Selector (the whole fleet) for
// an unscoped identity and for calls without one (agents, tests).
func scopeOf(ctx context.Context) labels.Selector {
	if p, ok := auth.PrincipalFromContext(ctx); ok {
		return p.Scope
	}
	return labels.Selector{}
}

// sees reports whether the caller's scope holds the node.
func sees(ctx context.Context, reg nodeMatcher, nodeID string) bool {
	sel := scopeOf(ctx)
	return sel.String() == "" || reg.Matches(nodeID, sel)
}

// seesLabels reports whether the caller's scope holds a node with these
// labels.
func seesLabels(ctx context.Context, l map[string]string) bool {
	return scopeOf(ctx).Matches(l)
}

// seesJob reports whether every node of the job is in the caller's scope:
// a scoped identity sees only jobs wholly inside its part of the fleet.
func seesJob(ctx context.Context, reg nodeMatcher, j *forlockv1.Job) bool {
	sel := scopeOf(ctx)
	if sel.String() == "" {
		return true
	}
	for _, t := range j.GetTasks() {
		if !reg.Matches(t.GetNodeId(), sel) {
			return false
		}
	}
	return true
}

// unscoped refuses a call that acts on the whole fleet at once (rewrapping
// every backup key) to a scoped identity.
func unscoped(ctx context.Context, what string) error {
	if p, ok := auth.PrincipalFromContext(ctx); ok && p.Scoped() {
		return status.Errorf(codes.PermissionDenied, "%s acts on the whole fleet: identity %s is scoped to %q", what, p.Name, p.Scope.String())
	}
	return nil
}

// needKind checks that the caller's role may run a job of this spec.
func needKind(ctx context.Context, spec *forlockv1.JobSpec) error {
	p, ok := auth.PrincipalFromContext(ctx)
	if !ok {
		return nil
	}
	perm := access.KindPermission(protocol.KindOf(spec))
	if perm == "" {
		return nil // an unknown kind: the engine says what is wrong
	}
	if err := p.Need(perm); err != nil {
		return status.Errorf(codes.PermissionDenied, "%v: ask an admin", err)
	}
	return nil
}

// findInScope finds a node by name or ID; one outside the caller's scope
// is not found, as if absent.
func findInScope(ctx context.Context, reg *registry.Registry, ref string) (registry.Target, error) {
	t, err := reg.Find(ref)
	if err == nil && !sees(ctx, reg, t.ID) {
		err = store.NodeNotFound(ref)
	}
	return t, err
}
