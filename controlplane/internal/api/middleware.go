package api

import (
	"context"
	"log/slog"
	"runtime/debug"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// errPanicked is what the caller of a handler that panicked gets.
var errPanicked = status.Error(codes.Internal, "internal error; see the control plane log")

// Recover turns a handler panic into Internal and logs the stack.
func Recover(log *slog.Logger) (grpc.UnaryServerInterceptor, grpc.StreamServerInterceptor) {
	handle := func(ctx context.Context, method string, err *error) {
		if r := recover(); r != nil {
			log.ErrorContext(ctx, "handler panic", "method", method, "panic", r, "stack", string(debug.Stack()))
			*err = errPanicked
		}
	}
	unary := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (resp any, err error) {
		defer handle(ctx, info.FullMethod, &err)
		return h(ctx, req)
	}
	stream := func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) (err error) {
		defer handle(ss.Context(), info.FullMethod, &err)
		return h(srv, ss)
	}
	return unary, stream
}

// Log records each unary call at debug level and each failed one at info,
// with the client's address; streams are logged when they end. A call whose
// handler panics is recorded as Internal on the panic's way out to Recover,
// so the request log has every call. Requests, responses and metadata are
// never logged: they can carry tokens.
func Log(log *slog.Logger) (grpc.UnaryServerInterceptor, grpc.StreamServerInterceptor) {
	record := func(ctx context.Context, method string, start time.Time, err error) {
		code := status.Code(err)
		level := slog.LevelDebug
		if code != codes.OK {
			level = slog.LevelInfo
		}
		log.Log(ctx, level, "rpc", "method", method, "client", clientOf(ctx), "code", code.String(), "duration", time.Since(start))
	}
	// Deferred, so that it also runs while a panic unwinds; it does not
	// recover: that is Recover's job, outside this interceptor.
	done := func(ctx context.Context, method string, start time.Time, err *error, returned *bool) {
		if !*returned {
			*err = errPanicked
		}
		record(ctx, method, start, *err)
	}
	unary := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (resp any, err error) {
		returned := false
		defer done(ctx, info.FullMethod, time.Now(), &err, &returned)
		resp, err = h(ctx, req)
		returned = true
		return resp, err
	}
	stream := func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) (err error) {
		returned := false
		defer done(ss.Context(), info.FullMethod, time.Now(), &err, &returned)
		err = h(srv, ss)
		returned = true
		return err
	}
	return unary, stream
}
