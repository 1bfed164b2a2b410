package access

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/forlock/fleet/internal/protocol"
	_ "github.com/forlock/fleet/proto/forlock/v1" // registers the API's descriptors
)

// TestEveryMethodHasARule: a new RPC without a rule fails here (and is
// refused for everyone at run time).
func TestEveryMethodHasARule(t *testing.T) {
	n := 0
	protoregistry.GlobalFiles.RangeFilesByPackage("forlock.v1", func(fd protoreflect.FileDescriptor) bool {
		svcs := fd.Services()
		for i := range svcs.Len() {
			methods := svcs.Get(i).Methods()
			for j := range methods.Len() {
				m := methods.Get(j)
				full := "/" + string(svcs.Get(i).FullName()) + "/" + string(m.Name())
				r, ok := Methods[full]
				require.True(t, ok, "%s has no rule in access.Methods", full)
				require.NotEqual(t, ByNobody, r.Caller, full)
				if r.Caller == ByIdentity {
					require.NotEmpty(t, r.Permission, "%s needs a permission", full)
				}
				if r.Destructive {
					require.True(t, r.Mutating, "%s is destructive, so it changes state", full)
				}
				n++
			}
		}
		return true
	})
	require.Greater(t, n, 20)
}

func TestEveryKindHasAPermission(t *testing.T) {
	for _, k := range protocol.Kinds() {
		p := KindPermission(k)
		require.NotEmpty(t, p, k)
		require.True(t, Admin.Can(p), "admin can run %s", k)
		// An operator runs what is not destructive, and upgrades (backed up
		// first, rolled back on failure); an admin the rest.
		require.Equal(t, !k.Destructive() || k == protocol.KindUpgrade, Operator.Can(p), k)
	}
	require.Empty(t, KindPermission("nosuch"))
}

func TestRolesNest(t *testing.T) {
	for _, p := range Viewer.Permissions() {
		require.True(t, Operator.Can(p), p)
	}
	for _, p := range Operator.Permissions() {
		require.True(t, Admin.Can(p), p)
	}
	require.False(t, Viewer.Can(SubmitJobs))
	require.False(t, Operator.Can(Restore))
	require.False(t, Operator.Can(EditLabels), "only an admin may change labels, or scopes would leak")
	require.False(t, Operator.Can(ManageAccess))
	_, err := ParseRole("root")
	require.ErrorContains(t, err, "use viewer, operator, admin")
	r, err := ParseRole("operator")
	require.NoError(t, err)
	require.Equal(t, Operator, r)
}

func TestIdentityUsable(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	id := Identity{Name: "ci-backup", Role: Operator, ExpiresAt: now.Add(time.Hour)}
	require.NoError(t, id.Usable(now))
	require.ErrorIs(t, id.Usable(now.Add(time.Hour)), ErrExpired)
	id.RevokedAt = now
	require.ErrorIs(t, id.Usable(now), ErrRevoked)
}

func TestScope(t *testing.T) {
	id := Identity{Name: "junior", Role: Operator, Scope: "env=staging"}
	p, err := id.Principal()
	require.NoError(t, err)
	require.True(t, p.Scoped())
	require.True(t, p.Sees(map[string]string{"env": "staging", "zone": "a"}))
	require.False(t, p.Sees(map[string]string{"env": "prod"}))
	require.False(t, p.Sees(nil))
	require.False(t, Bootstrap().Scoped())
	require.True(t, Bootstrap().Sees(nil))
	require.ErrorIs(t, p.Need(Restore), ErrDenied)
	require.ErrorContains(t, p.Need(Restore), "junior (role operator) lacks restore.run")
	require.NoError(t, p.Need(RunBackup))
}

func TestValidateName(t *testing.T) {
	for _, ok := range []string{"alice", "ci-backup", "bob@example.com", "a"} {
		require.NoError(t, ValidateName(ok), ok)
	}
	for _, bad := range []string{"", "Alice", "admin", "-x", "x-", strings.Repeat("a", 64), "a b", "a/b"} {
		require.Error(t, ValidateName(bad), bad)
	}
}
