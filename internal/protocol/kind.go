package protocol

import (
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// Kind is a job kind: the name of the JobSpec oneof field that is set, e.g.
// "health_check". It is stored with every job (Job.kind) and in the agent's
// task journal.
type Kind string

// The job kinds, one per JobSpec oneof field.
const (
	// KindHealthCheck runs the agent's health checks and reports them.
	// Requires CapabilityTasks. Not destructive.
	KindHealthCheck Kind = "health_check"
	// KindBackup makes a restore point: encrypted artifacts written to the
	// job's destination and cataloged. Requires CapabilityTasks. Not
	// destructive.
	KindBackup Kind = "backup"
	// KindRestore puts a node's data back from verified artifacts,
	// replacing what is there. Requires CapabilityTasks. Destructive.
	KindRestore Kind = "restore"
	// KindUpgrade moves a node's services to a new release, backed up
	// first, health-gated, rolled back on failure. Requires
	// CapabilityTasks. Destructive.
	KindUpgrade Kind = "upgrade"
	// KindRollback returns a node's services to an earlier recorded
	// release. Requires CapabilityTasks. Destructive.
	KindRollback Kind = "rollback"
	// KindCertRotate installs a fresh TLS certificate into a node's nginx
	// (the old one is kept until the new one serves). Requires
	// CapabilityTasks. Not destructive.
	KindCertRotate Kind = "cert_rotate"
	// KindDeleteBackup deletes artifacts from their storage and marks them
	// deleted in the catalog. Requires CapabilityTasks. Destructive.
	KindDeleteBackup Kind = "delete_backup"
	// KindVerifyBackup is a restore drill: a restore point restored into
	// scratch containers beside a node and its recorded counts compared.
	// Requires CapabilityTasks. Not destructive (the live containers are
	// never touched).
	KindVerifyBackup Kind = "verify_backup"
)

// kindInfo is one row of the kinds table.
type kindInfo struct {
	// capability an agent must have announced to be assigned the kind.
	capability Capability
	// destructive: the task changes or removes data that running it again
	// does not bring back.
	destructive bool
}

// kinds is the one table of the job kinds, in JobSpec field order.
var kinds = []struct {
	kind Kind
	kindInfo
}{
	{KindHealthCheck, kindInfo{CapabilityTasks, false}},
	{KindBackup, kindInfo{CapabilityTasks, false}},
	{KindRestore, kindInfo{CapabilityTasks, true}},
	{KindUpgrade, kindInfo{CapabilityTasks, true}},
	{KindRollback, kindInfo{CapabilityTasks, true}},
	{KindCertRotate, kindInfo{CapabilityTasks, false}},
	{KindDeleteBackup, kindInfo{CapabilityTasks, true}},
	{KindVerifyBackup, kindInfo{CapabilityTasks, false}},
}

func (k Kind) info() (kindInfo, bool) {
	for _, r := range kinds {
		if r.kind == k {
			return r.kindInfo, true
		}
	}
	return kindInfo{}, false
}

// Valid reports whether k is a job kind this build knows.
func (k Kind) Valid() bool {
	_, ok := k.info()
	return ok
}

// Capability returns the capability an agent must announce to be assigned
// a task of kind k, or "" for an invalid kind.
func (k Kind) Capability() Capability {
	i, _ := k.info()
	return i.capability
}

// Destructive reports whether a task of kind k changes or removes data that
// running it again does not bring back (restore, upgrade, rollback,
// delete_backup); false for an invalid kind.
func (k Kind) Destructive() bool {
	i, _ := k.info()
	return i.destructive
}

// Kinds returns every job kind, in JobSpec field order.
func Kinds() []Kind {
	out := make([]Kind, len(kinds))
	for i, r := range kinds {
		out[i] = r.kind
	}
	return out
}

// KindOf returns a spec's kind: the name of its set oneof field, or "" when
// none is set (or the field is newer than this build's API, which protobuf
// then keeps as an unknown field).
func KindOf(spec *forlockv1.JobSpec) Kind {
	m := spec.ProtoReflect()
	if fd := m.WhichOneof(m.Descriptor().Oneofs().ByName("kind")); fd != nil {
		return Kind(fd.Name())
	}
	return ""
}
