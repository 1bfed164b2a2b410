// Package api holds the control plane's gRPC handlers. Each handler is thin:
// it validates the request, calls the store or the registry, and maps errors
// to status codes through one table.
package api

import (
	"context"
	"errors"
	"log/slog"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/forlock/fleet/controlplane/internal/enroll"
	"github.com/forlock/fleet/controlplane/internal/jobs"
	"github.com/forlock/fleet/controlplane/internal/registry"
	"github.com/forlock/fleet/controlplane/internal/store"
)

// errorCodes maps our sentinel errors to status codes. The message of the
// wrapping error is shown to the caller, so it must hold no secret.
var errorCodes = []struct {
	err  error
	code codes.Code
}{
	{store.ErrTokenUnknown, codes.Unauthenticated},
	{store.ErrTokenExpired, codes.PermissionDenied},
	{store.ErrTokenUsedUp, codes.PermissionDenied},
	{store.ErrTokenRevoked, codes.PermissionDenied},
	{store.ErrAlreadyRevoked, codes.FailedPrecondition},
	{store.ErrIdentityRetired, codes.Unauthenticated},
	{registry.ErrUnknownNode, codes.Unauthenticated},
	{registry.ErrRetired, codes.Unauthenticated},
	{enroll.ErrSuperseded, codes.Unauthenticated},
	{enroll.ErrNameTaken, codes.AlreadyExists},
	{enroll.ErrWrongNode, codes.PermissionDenied},
	{enroll.ErrQuarantined, codes.PermissionDenied},
	{store.ErrNotFound, codes.NotFound},
	{jobs.ErrInvalid, codes.InvalidArgument},
	{jobs.ErrNotFound, codes.NotFound},
	{jobs.ErrEnded, codes.FailedPrecondition},
	// The message names the data dir and the free space, and says to free
	// some; clients may retry once there is room.
	{store.ErrDiskFull, codes.ResourceExhausted},
}

// toStatus converts a domain error into a status error. Unknown errors are
// logged and hidden behind Internal.
func toStatus(ctx context.Context, log *slog.Logger, err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return status.FromContextError(err).Err()
	}
	for _, e := range errorCodes {
		if errors.Is(err, e.err) {
			return status.Error(e.code, err.Error())
		}
	}
	log.ErrorContext(ctx, "internal error", "err", err)
	return status.Error(codes.Internal, "internal error; see the control plane log")
}

func invalid(format string, args ...any) error {
	return status.Errorf(codes.InvalidArgument, format, args...)
}
