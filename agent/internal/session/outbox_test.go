package session

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

func taskUpdate(id string) *forlockv1.ConnectRequest {
	return &forlockv1.ConnectRequest{Msg: &forlockv1.ConnectRequest_TaskUpdate{TaskUpdate: &forlockv1.TaskUpdate{TaskId: id}}}
}

func TestOutboxAndTaskMessages(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ob := NewOutbox(4)
	got := make(chan *forlockv1.ConnectResponse, 10)
	fs, done := start(ctx, t, func(c *Config) {
		c.Outbox = ob
		c.Capabilities = []string{"tasks.v1"}
		c.OnMessage = func(m *forlockv1.ConnectResponse) {
			got <- m
			ob.TrySend(taskUpdate(m.GetTaskAssignment().GetTaskId())) // answering from the callback never blocks
		}
	})
	require.True(t, ob.TrySend(taskUpdate("queued-before-hello")))
	hello := fs.next(t).GetHello()
	require.Equal(t, []string{"heartbeat.v1", "ping.v1", "tasks.v1"}, hello.GetCapabilities())
	fs.push(serverHello(time.Hour))

	// The queued message waits for the ServerHello; then the heartbeat and
	// the queue go out in some order.
	var ids []string
	for range 2 {
		m := fs.next(t)
		if u := m.GetTaskUpdate(); u != nil {
			ids = append(ids, u.GetTaskId())
		}
	}
	require.Equal(t, []string{"queued-before-hello"}, ids)

	fs.push(&forlockv1.ConnectResponse{Msg: &forlockv1.ConnectResponse_TaskAssignment{TaskAssignment: &forlockv1.TaskAssignment{TaskId: "t1"}}})
	require.Equal(t, "t1", (<-got).GetTaskAssignment().GetTaskId())
	require.Equal(t, "t1", fs.next(t).GetTaskUpdate().GetTaskId())

	require.True(t, ob.Send(ctx, taskUpdate("t2")))
	require.Equal(t, "t2", fs.next(t).GetTaskUpdate().GetTaskId())

	cancel()
	<-fs.closed
	fs.end(io.EOF)
	wait(t, done)
	<-ob.Done()
	require.False(t, ob.TrySend(taskUpdate("late")), "an ended session's outbox takes nothing")
	require.False(t, ob.Send(context.Background(), taskUpdate("late")))
}

func TestOutboxIsBounded(t *testing.T) {
	ob := NewOutbox(1)
	require.True(t, ob.TrySend(taskUpdate("a")))
	require.False(t, ob.TrySend(taskUpdate("b")), "full: never blocks")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	require.False(t, ob.Send(ctx, taskUpdate("b")), "Send gives up when ctx ends")
	require.Empty(t, NewOutbox(0).ch)
	require.Equal(t, DefaultOutboxSize, cap(NewOutbox(0).ch))
}
