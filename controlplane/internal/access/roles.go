// Package access decides what an authenticated operator may do: roles and
// their permissions, the permission each RPC needs, the permission each job
// kind needs, and the scope (a label selector) that bounds which nodes an
// identity can see or touch.
//
// Every decision is made from the tables in this package: Methods names the
// rule of every RPC of the API (a test fails for an RPC without one), and
// KindPermission the permission of every job kind. The auth interceptor
// applies Methods; the job engine applies KindPermission and the scope when
// it resolves a target, and again at dispatch.
package access

import (
	"fmt"
	"slices"
	"strings"

	"github.com/forlock/fleet/internal/protocol"
)

// Role is a named set of permissions.
type Role string

// The roles, each holding the permissions of the one before.
const (
	// Viewer reads nodes, jobs, the backup catalog, health and
	// certificates.
	Viewer Role = "viewer"
	// Operator also runs health checks, backups, upgrades and certificate
	// rotations, cancels jobs and reads logs.
	Operator Role = "operator"
	// Admin also restores, deletes backups, rolls back, removes nodes,
	// changes labels, manages join tokens, identities and backup keys,
	// reads the audit log and saves snapshots of the control plane.
	Admin Role = "admin"
)

// Permission is one thing a role may do.
type Permission string

// The permissions.
const (
	ReadFleet    Permission = "fleet.read"    // nodes, jobs, catalog, health, certificates, status
	RunHealth    Permission = "health.run"    // health_check jobs
	RunBackup    Permission = "backup.run"    // backup jobs
	RunUpgrade   Permission = "upgrade.run"   // upgrade jobs
	RotateCerts  Permission = "certs.rotate"  // cert_rotate jobs
	CancelJobs   Permission = "jobs.cancel"   // cancel a job
	ReadLogs     Permission = "logs.read"     // container logs of a node
	Restore      Permission = "restore.run"   // restore jobs
	DeleteBackup Permission = "backup.delete" // delete_backup jobs
	Rollback     Permission = "rollback.run"  // rollback jobs
	RemoveNodes  Permission = "nodes.remove"  // remove a node
	EditLabels   Permission = "nodes.label"   // change a node's labels
	ManageTokens Permission = "tokens.manage" // join tokens
	ManageKeys   Permission = "keys.manage"   // rewrap backup keys
	ManageAccess Permission = "access.manage" // identities
	ReadAudit    Permission = "audit.read"    // the audit log
	// SnapshotControlPlane reads everything the control plane holds, its
	// keys included, into an encrypted snapshot.
	SnapshotControlPlane Permission = "controlplane.snapshot"
	// SubmitJobs lets a caller reach SubmitJob at all; the job's kind then
	// needs its own permission (KindPermission).
	SubmitJobs Permission = "jobs.submit"
)

var grants = map[Role][]Permission{
	Viewer:   {ReadFleet},
	Operator: {ReadFleet, SubmitJobs, RunHealth, RunBackup, RunUpgrade, RotateCerts, CancelJobs, ReadLogs},
	Admin: {ReadFleet, SubmitJobs, RunHealth, RunBackup, RunUpgrade, RotateCerts, CancelJobs, ReadLogs,
		Restore, DeleteBackup, Rollback, RemoveNodes, EditLabels, ManageTokens, ManageKeys, ManageAccess, ReadAudit,
		SnapshotControlPlane},
}

// Roles lists the roles, least first.
func Roles() []Role { return []Role{Viewer, Operator, Admin} }

// ParseRole checks a role name.
func ParseRole(s string) (Role, error) {
	r := Role(s)
	if _, ok := grants[r]; !ok {
		names := make([]string, 0, len(grants))
		for _, r := range Roles() {
			names = append(names, string(r))
		}
		return "", fmt.Errorf("unknown role %q: use %s", s, strings.Join(names, ", "))
	}
	return r, nil
}

// Can reports whether the role holds the permission.
func (r Role) Can(p Permission) bool { return slices.Contains(grants[r], p) }

// Permissions lists what the role holds.
func (r Role) Permissions() []Permission { return slices.Clone(grants[r]) }

// KindPermission is the permission a job of kind needs ("" for an unknown
// kind: the job engine refuses it before asking).
func KindPermission(kind protocol.Kind) Permission {
	switch kind {
	case protocol.KindHealthCheck:
		return RunHealth
	case protocol.KindBackup, protocol.KindVerifyBackup:
		return RunBackup
	case protocol.KindUpgrade:
		return RunUpgrade
	case protocol.KindCertRotate:
		return RotateCerts
	case protocol.KindRestore:
		return Restore
	case protocol.KindRollback:
		return Rollback
	case protocol.KindDeleteBackup:
		return DeleteBackup
	}
	return ""
}
