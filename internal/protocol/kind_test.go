package protocol

import (
	"testing"

	"github.com/stretchr/testify/require"

	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// TestEveryJobSpecCaseHasAKind walks the JobSpec oneof through protobuf
// reflection, so a new spec field without a Kind row fails here.
func TestEveryJobSpecCaseHasAKind(t *testing.T) {
	oneof := (&forlockv1.JobSpec{}).ProtoReflect().Descriptor().Oneofs().ByName("kind")
	require.NotNil(t, oneof)
	fields := oneof.Fields()
	require.Positive(t, fields.Len())
	seen := map[Kind]bool{}
	for i := range fields.Len() {
		fd := fields.Get(i)
		spec := &forlockv1.JobSpec{}
		m := spec.ProtoReflect()
		m.Set(fd, m.NewField(fd))
		k := KindOf(spec)
		require.Equal(t, Kind(fd.Name()), k, "field %s", fd.Name())
		require.True(t, k.Valid(), "JobSpec.%s has no row in the kinds table", fd.Name())
		require.NotEmpty(t, k.Capability(), "kind %s", k)
		seen[k] = true
	}
	// And the other way: every row is a JobSpec field.
	require.Len(t, Kinds(), fields.Len())
	for _, k := range Kinds() {
		require.True(t, seen[k], "kind %s is not a JobSpec oneof field", k)
	}
}

func TestKindOfNoneIsInvalid(t *testing.T) {
	require.Equal(t, Kind(""), KindOf(&forlockv1.JobSpec{}))
	require.Equal(t, Kind(""), KindOf(nil))
	for _, k := range []Kind{"", "bogus", "Backup", "backup "} {
		require.False(t, k.Valid(), "%q", k)
		require.Empty(t, k.Capability(), "%q", k)
		require.False(t, k.Destructive(), "%q", k)
	}
	require.True(t, KindBackup.Valid())
}

// TestWireValues pins the strings that go over the wire and into stored
// jobs and journals: they must never change.
func TestWireValues(t *testing.T) {
	require.Equal(t, []Kind{"health_check", "backup", "restore", "upgrade", "rollback", "cert_rotate", "delete_backup", "verify_backup"}, Kinds())
	require.Equal(t, []string{"heartbeat.v1", "ping.v1", "tasks.v1", "logs.v1"},
		Strings(CapabilityHeartbeat, CapabilityPing, CapabilityTasks, CapabilityLogs))
	for _, k := range Kinds() {
		require.Equal(t, CapabilityTasks, k.Capability(), "kind %s", k)
	}
}

func TestDestructive(t *testing.T) {
	var destructive, safe []Kind
	for _, k := range Kinds() {
		if k.Destructive() {
			destructive = append(destructive, k)
		} else {
			safe = append(safe, k)
		}
	}
	require.Equal(t, []Kind{KindRestore, KindUpgrade, KindRollback, KindDeleteBackup}, destructive)
	require.Equal(t, []Kind{KindHealthCheck, KindBackup, KindCertRotate, KindVerifyBackup}, safe)
}
