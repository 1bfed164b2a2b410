package commands

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestExplainRPC(t *testing.T) {
	s := settings{address: "cp:7443", from: "--addr", timeout: 5 * time.Second}
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"unavailable", status.Error(codes.Unavailable, "connection refused"),
			"cannot reach the control plane at cp:7443: is it running? check --addr (address from --addr; connection refused)"},
		{"tls", status.Error(codes.Unavailable, "authentication handshake failed: x509: certificate signed by unknown authority"),
			"TLS with the control plane at cp:7443 failed: check --ca-file / FORLOCK_CA_FILE points at the control plane's CA"},
		{"unauthenticated", status.Error(codes.Unauthenticated, "invalid token"),
			"the token was refused: check --token / FORLOCK_TOKEN or the context (invalid token)"},
		{"not found", status.Error(codes.NotFound, `node "web-9" not found`), `node "web-9" not found`},
		{"invalid argument", status.Error(codes.InvalidArgument, "label selector: bad term"), "label selector: bad term"},
		{"permission denied", status.Error(codes.PermissionDenied, "admin token required"), "permission denied: admin token required"},
		{"deadline", status.Error(codes.DeadlineExceeded, "context deadline exceeded"),
			"the control plane at cp:7443 did not answer within 5s: check the network or raise --timeout"},
		{"canceled", status.Error(codes.Canceled, "context canceled"), "interrupted"},
		{"unimplemented", status.Error(codes.Unimplemented, "unknown method"), "does not support this call"},
		{"internal", status.Error(codes.Internal, "boom"), "call failed (Internal): boom"},
		{"not a status", errors.New("write output: broken pipe"), "write output: broken pipe"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := explainRPC(tt.err, s)
			require.ErrorContains(t, got, tt.want)
			if st, ok := status.FromError(tt.err); ok {
				require.Equal(t, st.Code(), status.Code(got), "the status stays reachable")
			}
		})
	}
}

func TestBearerTokenNeedsTransportSecurity(t *testing.T) {
	tok := bearerToken("s3cret")
	require.True(t, tok.RequireTransportSecurity())
	md, err := tok.GetRequestMetadata(context.Background())
	require.NoError(t, err)
	require.Equal(t, map[string]string{"authorization": "Bearer s3cret"}, md)
}
