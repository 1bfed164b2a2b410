package api

import (
	"context"
	"log/slog"
	"runtime/debug"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/forlock/fleet/controlplane/internal/limit"
)

// Recover turns a handler panic into Internal and logs the stack.
func Recover(log *slog.Logger) (grpc.UnaryServerInterceptor, grpc.StreamServerInterceptor) {
	handle := func(ctx context.Context, method string, err *error) {
		if r := recover(); r != nil {
			log.ErrorContext(ctx, "handler panic", "method", method, "panic", r, "stack", string(debug.Stack()))
			*err = status.Error(codes.Internal, "internal error; see the control plane log")
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
// with the client's address; streams are logged when they end. Requests,
// responses and metadata are never logged: they can carry tokens.
func Log(log *slog.Logger) (grpc.UnaryServerInterceptor, grpc.StreamServerInterceptor) {
	record := func(ctx context.Context, method string, start time.Time, err error) {
		code := status.Code(err)
		level := slog.LevelDebug
		if code != codes.OK {
			level = slog.LevelInfo
		}
		var client string
		if p, ok := peer.FromContext(ctx); ok {
			client = limit.Host(p.Addr)
		}
		log.Log(ctx, level, "rpc", "method", method, "client", client, "code", code.String(), "duration", time.Since(start))
	}
	unary := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		start := time.Now()
		resp, err := h(ctx, req)
		record(ctx, info.FullMethod, start, err)
		return resp, err
	}
	stream := func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		start := time.Now()
		err := h(srv, ss)
		record(ss.Context(), info.FullMethod, start, err)
		return err
	}
	return unary, stream
}
