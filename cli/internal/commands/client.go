package commands

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/forlock/fleet/internal/buildinfo"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// bearerToken sends the admin token as "authorization: Bearer <token>" and
// refuses to do so over a connection without transport security.
type bearerToken string

func (t bearerToken) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(t)}, nil
}

func (bearerToken) RequireTransportSecurity() bool { return true }

// withReason sends the change reason with every unary call.
func withReason(reason string) grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if reason != "" {
			ctx = metadata.AppendToOutgoingContext(ctx, reasonHeader, reason)
		}
		return invoker(ctx, method, req, reply, cc, opts...)
	}
}

// dial prepares a client connection; gRPC connects lazily on the first call.
func dial(s settings) (*grpc.ClientConn, error) {
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS13}
	if s.caFile != "" {
		pem, err := os.ReadFile(s.caFile)
		if err != nil {
			return nil, fmt.Errorf("read CA file (check --ca-file, %s or the context's ca-file): %w", envCAFile, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA file %s holds no PEM certificate: point --ca-file at the control plane's ca.pem", s.caFile)
		}
		tlsCfg.RootCAs = pool
	}
	conn, err := grpc.NewClient(s.address,
		grpc.WithTransportCredentials(credentials.NewTLS(tlsCfg)),
		grpc.WithPerRPCCredentials(bearerToken(s.token)),
		grpc.WithUserAgent("forlockctl/"+buildinfo.Version()),
		grpc.WithChainUnaryInterceptor(withReason(s.reason)),
	)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", s.address, err)
	}
	return conn, nil
}

// withNodeClient resolves the connection settings, dials, and runs call with
// a per-call deadline. gRPC errors are turned into messages that say what to
// do.
func (a *app) withNodeClient(cmd *cobra.Command, call func(context.Context, forlockv1.NodeServiceClient) error) error {
	s, err := resolveSettings(a.conn, a.io.Getenv)
	if err != nil {
		return err
	}
	return a.callNodes(cmd.Context(), s, call)
}

func (a *app) callNodes(ctx context.Context, s settings, call func(context.Context, forlockv1.NodeServiceClient) error) error {
	return callUnary(ctx, s, forlockv1.NewNodeServiceClient, call)
}

// callUnary dials, makes a client with newClient, and runs call under the
// per-call deadline, turning gRPC errors into messages that say what to do.
func callUnary[C any](ctx context.Context, s settings, newClient func(grpc.ClientConnInterface) C, call func(context.Context, C) error) error {
	conn, err := dial(s)
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close() }()
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	if err := call(ctx, newClient(conn)); err != nil {
		return explainRPC(err, s)
	}
	return nil
}

// rpcError carries a user-facing message for a failed call and keeps the
// gRPC status reachable with errors.As / status.FromError.
type rpcError struct {
	msg string
	err error
}

func (e *rpcError) Error() string { return e.msg }
func (e *rpcError) Unwrap() error { return e.err }

// explainRPC maps a gRPC status to a message with a hint. Errors without a
// status pass through unchanged.
func explainRPC(err error, s settings) error {
	st, ok := status.FromError(err)
	if !ok || st.Code() == codes.OK {
		return err
	}
	msg := st.Message()
	var text string
	switch st.Code() {
	case codes.Unavailable:
		if strings.Contains(msg, "handshake") || strings.Contains(msg, "x509") || strings.Contains(msg, "certificate") {
			text = fmt.Sprintf("TLS with the control plane at %s failed: check --ca-file / %s points at the control plane's CA (%s)",
				s.address, envCAFile, msg)
		} else {
			text = fmt.Sprintf("cannot reach the control plane at %s: is it running? check --addr (address from %s; %s)",
				s.address, s.from, msg)
		}
	case codes.Unauthenticated:
		text = fmt.Sprintf("the token was refused: check --token / %s or the context (%s)", envToken, msg)
	case codes.PermissionDenied:
		text = "permission denied: " + msg
	case codes.NotFound, codes.InvalidArgument, codes.AlreadyExists, codes.FailedPrecondition, codes.ResourceExhausted:
		text = msg
	case codes.DeadlineExceeded:
		text = fmt.Sprintf("the control plane at %s did not answer within %s: check the network or raise --timeout", s.address, s.timeout)
	case codes.Canceled:
		text = "interrupted"
	case codes.Unimplemented:
		text = fmt.Sprintf("the control plane at %s does not support this call: is it older than forlockctl %s? (%s)",
			s.address, buildinfo.Version(), msg)
	default:
		text = fmt.Sprintf("call failed (%s): %s", st.Code(), msg)
	}
	return &rpcError{msg: text, err: err}
}

// withJobClient resolves the connection settings, dials, and runs call with
// a JobService client. Unlike withNodeClient it sets no overall deadline, so
// that a watch can last as long as its job: each unary call applies
// s.timeout itself.
func (a *app) withJobClient(cmd *cobra.Command, call func(context.Context, settings, forlockv1.JobServiceClient) error) error {
	s, err := resolveSettings(a.conn, a.io.Getenv)
	if err != nil {
		return err
	}
	return a.callJobs(cmd.Context(), s, func(ctx context.Context, c forlockv1.JobServiceClient) error {
		return call(ctx, s, c)
	})
}

func (a *app) callJobs(ctx context.Context, s settings, call func(context.Context, forlockv1.JobServiceClient) error) error {
	conn, err := dial(s)
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close() }()
	if err := call(ctx, forlockv1.NewJobServiceClient(conn)); err != nil {
		var ee *exitError
		if errors.As(err, &ee) {
			return err
		}
		return explainRPC(err, s)
	}
	return nil
}
