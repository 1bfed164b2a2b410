package api

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestReceiveKeepsTheLastMessage: an agent's goodbye (or last log batch) is
// followed at once by EOF. Every message received before Recv failed must
// reach the handler before the failure does; when the two came on separate
// channels, a select picked EOF about half the time and the node never went
// offline (a failed CI run, TestJobOfflineNodeWaitsUntilDeadline).
func TestReceiveKeepsTheLastMessage(t *testing.T) {
	for range 200 {
		msgs := []string{"heartbeat", "goodbye"}
		recv := func() (*string, error) {
			if len(msgs) == 0 {
				return nil, io.EOF
			}
			m := msgs[0]
			msgs = msgs[1:]
			return &m, nil
		}
		in, recvErr := receive(t.Context(), recv, 4)
		// Let the loop run ahead to EOF before the handler looks.
		time.Sleep(50 * time.Microsecond)
		var got []string
		for m := range in {
			got = append(got, *m)
		}
		require.Equal(t, []string{"heartbeat", "goodbye"}, got)
		require.ErrorIs(t, recvErr(), io.EOF)
	}
}

// TestReceiveStopsWithItsContext: a handler that has returned does not leave
// the loop blocked on a full channel.
func TestReceiveStopsWithItsContext(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	recv := func() (*string, error) { m := "flood"; return &m, nil }
	in, recvErr := receive(ctx, recv, 1)
	<-in
	cancel()
	for range in { //nolint:revive // drain until the loop closes the channel
	}
	require.Equal(t, codes.Canceled, status.Code(recvErr()), "got %v", recvErr())
}
