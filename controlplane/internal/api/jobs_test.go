package api

import (
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/forlock/fleet/internal/protocol"
)

// TestKindFilter: ListJobs takes no kind or a known one; a typo is
// InvalidArgument naming the kinds, not an empty list.
func TestKindFilter(t *testing.T) {
	for _, s := range []string{"", "health_check", "backup", "delete_backup"} {
		k, err := kindFilter(s)
		require.NoError(t, err, "%q", s)
		require.Equal(t, protocol.Kind(s), k)
	}
	for _, s := range []string{"bakup", "Backup", "tasks.v1"} {
		_, err := kindFilter(s)
		require.Equal(t, codes.InvalidArgument, status.Code(err), "%q", s)
		require.ErrorContains(t, err, `unknown job kind "`+s+`": use one of health_check, backup, restore,`)
	}
}
