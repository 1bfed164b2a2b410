package backupstore

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestList: both stores list the artifacts directly under a folder, not
// deeper and not beside it; a missing folder has none.
func TestListFolder(t *testing.T) {
	dir, _ := newTestDir(t)
	for name, st := range map[string]Lister{"dir": dir, "s3": newTestS3(t, "fleet")} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			got, err := st.List(ctx, "wal/n1/00000001")
			require.NoError(t, err)
			require.Empty(t, got, "a missing folder")
			for _, n := range []string{"wal/n1/00000001/a.zst.enc", "wal/n1/00000001/b.zst.enc", "wal/n1/00000001/deeper/c", "wal/n1/00000002/d", "wal/n1/000000010/e"} {
				_, err := st.Put(ctx, n, strings.NewReader("x"))
				require.NoError(t, err)
			}
			got, err = st.List(ctx, "wal/n1/00000001")
			require.NoError(t, err)
			require.ElementsMatch(t, []string{"a.zst.enc", "b.zst.enc"}, got)
			_, err = st.List(ctx, "../etc")
			require.ErrorIs(t, err, ErrInvalidName)
		})
	}
}
