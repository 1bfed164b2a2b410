package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/forlock/fleet/controlplane/internal/store"
)

// TestErrorReasons checks the error table: every sentinel has a distinct,
// well-formed reason, and a wrapped sentinel reaches the caller with its
// code, its message and its reason as google.rpc.ErrorInfo.
func TestErrorReasons(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	shape := regexp.MustCompile(`^[A-Z][A-Z0-9_]{2,62}[A-Z0-9]$`)
	seen := map[string]bool{}
	for _, e := range errorCodes {
		require.Regexp(t, shape, e.reason, "%v", e.err)
		require.False(t, seen[e.reason], "reason %s used twice", e.reason)
		seen[e.reason] = true

		err := toStatus(context.Background(), log, fmt.Errorf("doing a thing: %w", e.err))
		st := status.Convert(err)
		require.Equal(t, e.code, st.Code(), "%v", e.err)
		require.Contains(t, st.Message(), "doing a thing: "+e.err.Error())
		require.Len(t, st.Details(), 1, "%v", e.err)
		info, ok := st.Details()[0].(*errdetails.ErrorInfo)
		require.True(t, ok, "%T", st.Details()[0])
		require.Equal(t, e.reason, info.GetReason())
		require.Equal(t, ErrorDomain, info.GetDomain())
	}

	// The positive twin of "a sentinel carries a reason": an unknown error
	// carries none, and hides its text.
	st := status.Convert(toStatus(context.Background(), log, errors.New("secret internals")))
	require.Equal(t, codes.Internal, st.Code())
	require.NotContains(t, st.Message(), "secret internals")
	require.Empty(t, st.Details())

	// The disk-full reason survives deeper wrapping, as the engine wraps it.
	st = status.Convert(toStatus(context.Background(), log, fmt.Errorf("submit: %w", fmt.Errorf("commit: %w", store.ErrDiskFull))))
	require.Equal(t, codes.ResourceExhausted, st.Code())
	require.Equal(t, "DATA_DISK_FULL", st.Details()[0].(*errdetails.ErrorInfo).GetReason())
}
