package controlplane

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// Connections that carried a valid admin token stop counting against the
// per-address cap: with a cap of 2, five operator connections from one
// address stay open and keep working, while unauthenticated ones over the
// cap are refused.
func TestValidCallsFreeTheirConnection(t *testing.T) {
	e := startEnv(t, func(c *Config) { c.Limits.UnauthConnsPerAddress = 2 })
	var conns []*grpc.ClientConn
	for i := range 5 {
		conn := e.dial(nil)
		_, err := forlockv1.NewNodeServiceClient(conn).ListNodes(e.admin(), &forlockv1.ListNodesRequest{})
		require.NoError(t, err, "operator connection %d", i)
		conns = append(conns, conn)
	}
	for i, conn := range conns {
		_, err := forlockv1.NewNodeServiceClient(conn).ListNodes(e.admin(), &forlockv1.ListNodesRequest{})
		require.NoError(t, err, "operator connection %d, again", i)
	}

	// Unauthenticated: two health checkers hold the two slots; a third is
	// cut right after its handshake.
	health := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := healthpb.NewHealthClient(e.dial(nil)).Check(ctx, &healthpb.HealthCheckRequest{})
		return err
	}
	require.NoError(t, health())
	require.NoError(t, health())
	require.Error(t, health(), "a third unauthenticated connection from one address is over the cap")
}

// A connection with no call in progress for IdleConnTimeout is closed; with
// the default it stays.
func TestIdleConnectionsClosed(t *testing.T) {
	for _, tt := range []struct {
		idle   time.Duration
		closed bool
	}{{time.Second, true}, {0, false}} {
		e := startEnv(t, func(c *Config) { c.Limits.IdleConnTimeout = tt.idle })
		conn := e.dial(nil)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
		cancel()
		require.NoError(t, err)
		require.Equal(t, connectivity.Ready, conn.GetState())
		wentIdle := func() bool { return conn.GetState() != connectivity.Ready }
		if tt.closed {
			require.Eventually(t, wentIdle, 5*time.Second, 50*time.Millisecond, "idle connection not closed")
		} else {
			require.Never(t, wentIdle, 3*time.Second, 100*time.Millisecond, "closed under the default")
		}
	}
}
