package dbsource

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/forlock/fleet/agent/internal/dockerrt"
)

// stoppedContainer is an Engine whose postgres container is not running:
// every exec fails at once, reading nothing.
type stoppedContainer struct{}

var errNotRunning = errors.New("container fl-postgres is not running")

func (stoppedContainer) Exec(context.Context, string, string, []string, io.Reader, io.Writer) (dockerrt.ExecResult, error) {
	return dockerrt.ExecResult{}, errNotRunning
}

// A dump of a stopped database fails at once with the reason; it used to
// wait for ever writing to a session that never started.
func TestDumpOfStoppedPostgresFailsAtOnce(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	_, err := Postgres{Exec: stoppedContainer{}}.DumpCounted(ctx, io.Discard)
	require.ErrorIs(t, err, errNotRunning)
	require.NoError(t, ctx.Err(), "it waited for the deadline")
}
