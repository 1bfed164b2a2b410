package wal

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/forlock/fleet/controlplane/internal/store"
	"github.com/forlock/fleet/internal/keys"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// TestKeysRotateWithTheClock: the current key stays until rotate_after,
// then a new one is made; an old key named by a cataloged WAL range is
// kept (and still owned), one named by none is dropped at a rotation
// KeyGrace after it was made.
func TestKeysRotateWithTheClock(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "cp.db"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	kek, err := keys.LoadOrCreateFile(filepath.Join(t.TempDir(), "kek"))
	require.NoError(t, err)
	now := time.Date(2026, 12, 3, 18, 0, 0, 0, time.UTC)
	k := NewKeys(st, kek, 0, func() time.Time { return now })

	k1, err := k.Current(t.Context(), "n1")
	require.NoError(t, err)
	require.Equal(t, "archive:n1:20261203T180000.000Z", k1.GetKeyId())
	require.Equal(t, now.Add(DefaultRotation), k1.GetRotateAfter().AsTime())
	now = now.Add(23 * time.Hour)
	again, err := k.Current(t.Context(), "n1")
	require.NoError(t, err)
	require.Equal(t, k1.GetKeyId(), again.GetKeyId())
	require.Equal(t, k1.GetPlainKey(), again.GetPlainKey())

	// k1 wraps archived WAL; then two rotations.
	_, err = st.MergeWalRanges(map[string][]*forlockv1.WalRange{"n1": {{NodeId: "n1", Timeline: 1, StartLsn: "0/1000000", EndLsn: "0/2000000",
		StartTime: timestamppb.New(now), EndTime: timestamppb.New(now), KeyIds: []string{k1.GetKeyId()}}}})
	require.NoError(t, err)
	now = now.Add(time.Hour)
	k2, err := k.Current(t.Context(), "n1")
	require.NoError(t, err)
	require.NotEqual(t, k1.GetKeyId(), k2.GetKeyId())
	now = now.Add(DefaultRotation)
	k3, err := k.Current(t.Context(), "n1")
	require.NoError(t, err)
	own, err := k.Owns("n1", k2.GetKeyId())
	require.NoError(t, err)
	require.True(t, own, "named by no range, but within KeyGrace: kept (its WAL may not be reported yet)")
	now = now.Add(KeyGrace + time.Minute)
	k4, err := k.Current(t.Context(), "n1")
	require.NoError(t, err)
	for id, want := range map[string]bool{k1.GetKeyId(): true, k2.GetKeyId(): false, k3.GetKeyId(): false, k4.GetKeyId(): true} {
		own, err := k.Owns("n1", id)
		require.NoError(t, err)
		require.Equal(t, want, own, id)
	}
	own, err = k.Owns("n2", k4.GetKeyId())
	require.NoError(t, err)
	require.False(t, own, "another node's key")
}
