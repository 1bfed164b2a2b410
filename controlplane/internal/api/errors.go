// Package api holds the control plane's gRPC handlers. Each handler is thin:
// it validates the request, calls the store (through the narrow interfaces
// in stores.go), the registry or the job engine, and maps errors to status
// codes through one table (errorCodes): a handler never builds a status for
// a domain condition itself.
package api

import (
	"context"
	"errors"
	"log/slog"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/forlock/fleet/controlplane/internal/access"
	"github.com/forlock/fleet/controlplane/internal/enroll"
	"github.com/forlock/fleet/controlplane/internal/jobs"
	"github.com/forlock/fleet/controlplane/internal/logs"
	"github.com/forlock/fleet/controlplane/internal/registry"
	"github.com/forlock/fleet/controlplane/internal/snapshot"
	"github.com/forlock/fleet/controlplane/internal/store"
	"github.com/forlock/fleet/controlplane/internal/wal"
)

// ErrorDomain is the google.rpc.ErrorInfo domain of the control plane's
// errors.
const ErrorDomain = "forlock.v1"

// errorCodes maps our sentinel errors to status codes and to a reason, a
// stable UPPER_SNAKE_CASE name a program can act on, sent as
// google.rpc.ErrorInfo. Reasons are API: never rename one. The message of the
// wrapping error is shown to the caller, so it must hold no secret.
var errorCodes = []struct {
	err    error
	code   codes.Code
	reason string
}{
	{store.ErrTokenUnknown, codes.Unauthenticated, "JOIN_TOKEN_UNKNOWN"},
	{store.ErrTokenExpired, codes.PermissionDenied, "JOIN_TOKEN_EXPIRED"},
	{store.ErrTokenUsedUp, codes.PermissionDenied, "JOIN_TOKEN_USED_UP"},
	{store.ErrTokenRevoked, codes.PermissionDenied, "JOIN_TOKEN_REVOKED"},
	{store.ErrAlreadyRevoked, codes.FailedPrecondition, "JOIN_TOKEN_ALREADY_REVOKED"},
	{store.ErrIdentityRetired, codes.Unauthenticated, "IDENTITY_RETIRED"},
	{registry.ErrUnknownNode, codes.Unauthenticated, "NODE_NOT_REGISTERED"},
	{registry.ErrRetired, codes.Unauthenticated, "CERTIFICATE_RETIRED"},
	{enroll.ErrSuperseded, codes.Unauthenticated, "CERTIFICATE_SUPERSEDED"},
	{enroll.ErrNameTaken, codes.AlreadyExists, "NODE_NAME_TAKEN"},
	{enroll.ErrWrongNode, codes.PermissionDenied, "JOIN_TOKEN_FOR_ANOTHER_NODE"},
	{enroll.ErrQuarantined, codes.PermissionDenied, "NODE_QUARANTINED"},
	// Before ErrNotFound, which it also is.
	{store.ErrNodeNotFound, codes.NotFound, "NODE_NOT_FOUND"},
	{store.ErrNotFound, codes.NotFound, "NOT_FOUND"},
	// An agent's log stream whose reader has gone, or that names another
	// node's request.
	{logs.ErrNoReader, codes.NotFound, "LOG_READER_GONE"},
	{logs.ErrWrongNode, codes.NotFound, "LOG_REQUEST_OF_ANOTHER_NODE"},
	{store.ErrExists, codes.AlreadyExists, "ALREADY_EXISTS"},
	{access.ErrRevoked, codes.FailedPrecondition, "IDENTITY_REVOKED"},
	{access.ErrDenied, codes.PermissionDenied, "PERMISSION_DENIED"},
	{jobs.ErrInvalid, codes.InvalidArgument, "INVALID_JOB"},
	// A point-in-time restore whose WAL or base backup is missing; the
	// message names the gap.
	{jobs.ErrWALMissing, codes.FailedPrecondition, "WAL_MISSING"},
	{wal.ErrBadReport, codes.InvalidArgument, "BAD_WAL_REPORT"},
	{jobs.ErrNotFound, codes.NotFound, "JOB_NOT_FOUND"},
	{jobs.ErrEnded, codes.FailedPrecondition, "JOB_ENDED"},
	// The message names the data dir and the free space, and says to free
	// some; clients may retry once there is room.
	{store.ErrDiskFull, codes.ResourceExhausted, "DATA_DISK_FULL"},
	// A snapshot to a Vault Transit key that cannot be used now: no Vault,
	// Vault down, sealed or refusing, no such key. The message says which.
	{snapshot.ErrKeyUnavailable, codes.FailedPrecondition, "SNAPSHOT_KEY_UNAVAILABLE"},
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
			return withReason(status.New(e.code, err.Error()), e.reason).Err()
		}
	}
	log.ErrorContext(ctx, "internal error", "err", err)
	return status.Error(codes.Internal, "internal error; see the control plane log")
}

// withReason attaches a google.rpc.ErrorInfo with reason to st.
func withReason(st *status.Status, reason string) *status.Status {
	if d, err := st.WithDetails(&errdetails.ErrorInfo{Reason: reason, Domain: ErrorDomain}); err == nil {
		return d
	}
	return st // only a marshalling failure of a two-string message: keep the plain status
}

func invalid(format string, args ...any) error {
	return status.Errorf(codes.InvalidArgument, format, args...)
}
