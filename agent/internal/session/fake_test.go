package session

import (
	"context"
	"io"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// fakeStream is the agent's end of an in-memory control stream; the test
// plays the control plane through its channels. It is a test double for the
// stream interface only, not a control plane.
type fakeStream struct {
	grpc.ClientStream // not used; satisfies the rest of the interface

	ctx      context.Context
	toServer chan *forlockv1.ConnectRequest
	toAgent  chan item
	closed   chan struct{} // closed by CloseSend
	once     sync.Once

	mu      sync.Mutex
	sendErr error
}

func newFakeStream() *fakeStream {
	return &fakeStream{
		toServer: make(chan *forlockv1.ConnectRequest, 1000),
		toAgent:  make(chan item, 100),
		closed:   make(chan struct{}),
	}
}

func (f *fakeStream) Context() context.Context { return f.ctx }

func (f *fakeStream) Send(m *forlockv1.ConnectRequest) error {
	f.mu.Lock()
	err := f.sendErr
	f.mu.Unlock()
	if err != nil {
		return err
	}
	select {
	case f.toServer <- m:
		return nil
	case <-f.ctx.Done():
		return io.EOF
	}
}

func (f *fakeStream) Recv() (*forlockv1.ConnectResponse, error) {
	select {
	case it := <-f.toAgent:
		return it.msg, it.err
	case <-f.ctx.Done():
		return nil, status.FromContextError(f.ctx.Err()).Err()
	}
}

func (f *fakeStream) CloseSend() error {
	f.once.Do(func() { close(f.closed) })
	return nil
}

// failSends makes every later Send fail with err.
func (f *fakeStream) failSends(err error) {
	f.mu.Lock()
	f.sendErr = err
	f.mu.Unlock()
}

// push delivers a message from the control plane.
func (f *fakeStream) push(m *forlockv1.ConnectResponse) { f.toAgent <- item{msg: m} }

// end ends the stream from the control plane's side with err (io.EOF for
// an OK status).
func (f *fakeStream) end(err error) { f.toAgent <- item{err: err} }

// next returns the next message the agent sent.
func (f *fakeStream) next(t *testing.T) *forlockv1.ConnectRequest {
	t.Helper()
	select {
	case m := <-f.toServer:
		return m
	case <-time.After(5 * time.Second):
		t.Fatal("the agent sent nothing within 5s")
		return nil
	}
}

// fakeConnector hands out one stream, or fails, or blocks until the
// context ends.
type fakeConnector struct {
	stream *fakeStream
	err    error
	block  bool
}

func (c *fakeConnector) Connect(ctx context.Context, _ ...grpc.CallOption) (Stream, error) {
	if c.block {
		<-ctx.Done()
		return nil, status.FromContextError(ctx.Err()).Err()
	}
	if c.err != nil {
		return nil, c.err
	}
	c.stream.ctx = ctx
	return c.stream, nil
}
