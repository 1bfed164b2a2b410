package session

import (
	"context"
	"errors"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func facts() *forlockv1.HostFacts { return &forlockv1.HostFacts{Hostname: "h1"} }

func serverHello(interval time.Duration) *forlockv1.ConnectResponse {
	return &forlockv1.ConnectResponse{Msg: &forlockv1.ConnectResponse_Hello{Hello: &forlockv1.ServerHello{
		ServerVersion: "test", NodeId: "0123456789abcdef0123456789abcdef",
		HeartbeatInterval: durationpb.New(interval),
	}}}
}

func ping(nonce uint64) *forlockv1.ConnectResponse {
	return &forlockv1.ConnectResponse{Msg: &forlockv1.ConnectResponse_Ping{Ping: &forlockv1.Ping{Nonce: nonce}}}
}

// start runs a session on a fresh fake stream and returns the stream and
// the session's result channel.
func start(ctx context.Context, t *testing.T, mod func(*Config)) (*fakeStream, <-chan Result) {
	t.Helper()
	fs := newFakeStream()
	cfg := Config{Connector: &fakeConnector{stream: fs}, AgentVersion: "v1.2.3", Facts: facts, CloseTimeout: time.Second}
	if mod != nil {
		mod(&cfg)
	}
	done := make(chan Result, 1)
	go func() { done <- Run(ctx, cfg) }()
	return fs, done
}

func wait(t *testing.T, done <-chan Result) Result {
	t.Helper()
	select {
	case r := <-done:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("session did not end within 10s")
		return Result{}
	}
}

// established runs a session through the hello exchange.
func established(ctx context.Context, t *testing.T, interval time.Duration, mod func(*Config)) (*fakeStream, <-chan Result) {
	t.Helper()
	fs, done := start(ctx, t, mod)
	require.NotNil(t, fs.next(t).GetHello())
	fs.push(serverHello(interval))
	require.Equal(t, uint64(1), fs.next(t).GetHeartbeat().GetSeq())
	return fs, done
}

func TestHelloThenHeartbeats(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	hellos := make(chan *forlockv1.ServerHello, 1)
	fs, done := start(ctx, t, func(c *Config) { c.OnHello = func(h *forlockv1.ServerHello) { hellos <- h } })

	hello := fs.next(t).GetHello()
	require.NotNil(t, hello, "the first message is the AgentHello")
	require.Equal(t, "v1.2.3", hello.GetAgentVersion())
	require.Equal(t, []string{"heartbeat.v1", "ping.v1"}, hello.GetCapabilities())
	require.Equal(t, "h1", hello.GetFacts().GetHostname())

	fs.push(serverHello(20 * time.Millisecond))
	for seq := uint64(1); seq <= 3; seq++ {
		hb := fs.next(t).GetHeartbeat()
		require.NotNil(t, hb)
		require.Equal(t, seq, hb.GetSeq())
		require.Equal(t, "h1", hb.GetFacts().GetHostname())
	}
	require.Equal(t, "0123456789abcdef0123456789abcdef", (<-hellos).GetNodeId())

	cancel()
	bye := fs.next(t)
	for bye.GetHeartbeat() != nil {
		bye = fs.next(t)
	}
	require.Equal(t, GoodbyeReason, bye.GetGoodbye().GetReason())
	<-fs.closed
	fs.end(io.EOF)
	r := wait(t, done)
	require.NoError(t, r.Err)
	require.NotNil(t, r.Hello)
}

func TestPingPongAndUnknownMessages(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	fs, done := established(ctx, t, time.Hour, nil)

	fs.push(ping(42))
	require.Equal(t, uint64(42), fs.next(t).GetPong().GetNonce())

	// A message kind from a newer control plane arrives as an empty oneof.
	fs.push(&forlockv1.ConnectResponse{})
	fs.push(&forlockv1.ConnectResponse{Msg: &forlockv1.ConnectResponse_Pong{Pong: &forlockv1.Pong{Nonce: 1}}})
	fs.push(serverHello(time.Millisecond)) // a second hello is ignored
	fs.push(ping(7))
	require.Equal(t, uint64(7), fs.next(t).GetPong().GetNonce(), "the session survives unknown kinds")

	fs.end(status.Error(codes.Unavailable, "restarting"))
	r := wait(t, done)
	require.Equal(t, codes.Unavailable, status.Code(r.Err))
	require.Equal(t, time.Hour, r.Hello.GetHeartbeatInterval().AsDuration())
}

func TestServerGoodbye(t *testing.T) {
	fs, done := established(context.Background(), t, time.Hour, nil)
	fs.push(&forlockv1.ConnectResponse{Msg: &forlockv1.ConnectResponse_Goodbye{Goodbye: &forlockv1.Goodbye{
		Reason: "control plane shutting down", ReconnectAfter: durationpb.New(3 * time.Second),
	}}})
	r := wait(t, done)
	require.NoError(t, r.Err)
	require.Equal(t, "control plane shutting down", r.Goodbye.GetReason())
	require.Equal(t, 3*time.Second, r.Goodbye.GetReconnectAfter().AsDuration())
	<-fs.closed
}

func TestStreamEnds(t *testing.T) {
	tests := []struct {
		name     string
		end      error
		wantErr  error
		wantCode codes.Code
	}{
		{"refused", status.Error(codes.PermissionDenied, "node removed"), nil, codes.PermissionDenied},
		{"eof", io.EOF, ErrClosed, codes.Unknown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs, done := established(context.Background(), t, time.Hour, nil)
			fs.end(tt.end)
			r := wait(t, done)
			if tt.wantErr != nil {
				require.ErrorIs(t, r.Err, tt.wantErr)
			}
			require.Equal(t, tt.wantCode, status.Code(r.Err))
		})
	}
}

func TestSendFailureReportsTheStreamStatus(t *testing.T) {
	fs, done := established(context.Background(), t, 10*time.Millisecond, nil)
	fs.failSends(io.EOF)
	fs.end(status.Error(codes.Unauthenticated, "certificate retired"))
	r := wait(t, done)
	require.Equal(t, codes.Unauthenticated, status.Code(r.Err))
	require.ErrorContains(t, r.Err, "certificate retired")
}

func TestGoodbyeBeforeStreamEndIsKeptWhenSendFails(t *testing.T) {
	fs, done := start(context.Background(), t, nil)
	fs.failSends(io.EOF)
	fs.push(&forlockv1.ConnectResponse{Msg: &forlockv1.ConnectResponse_Goodbye{Goodbye: &forlockv1.Goodbye{Reason: "node removed"}}})
	fs.end(io.EOF)
	r := wait(t, done)
	require.NoError(t, r.Err)
	require.Equal(t, "node removed", r.Goodbye.GetReason())
}

func TestHelloTimeout(t *testing.T) {
	_, done := start(context.Background(), t, func(c *Config) { c.HelloTimeout = 30 * time.Millisecond })
	r := wait(t, done)
	require.ErrorIs(t, r.Err, ErrHelloTimeout)
	require.Nil(t, r.Hello)
}

func TestSilentStreamIsPingedThenDropped(t *testing.T) {
	fs, done := established(context.Background(), t, 10*time.Millisecond, func(c *Config) { c.SilenceTimeout = 300 * time.Millisecond })
	var pinged bool
	for !pinged {
		m := fs.next(t)
		pinged = m.GetPing() != nil
	}
	r := wait(t, done)
	require.ErrorIs(t, r.Err, ErrSilent)
}

func TestAnsweredPingsKeepTheStream(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	fs, done := established(ctx, t, 10*time.Millisecond, func(c *Config) { c.SilenceTimeout = 150 * time.Millisecond })
	deadline := time.Now().Add(600 * time.Millisecond)
	for time.Now().Before(deadline) {
		if p := fs.next(t).GetPing(); p != nil {
			fs.push(&forlockv1.ConnectResponse{Msg: &forlockv1.ConnectResponse_Pong{Pong: &forlockv1.Pong{Nonce: p.GetNonce()}}})
		}
	}
	select {
	case r := <-done:
		t.Fatalf("session ended although pings were answered: %v", r.Err)
	default:
	}
	cancel()
	for fs.next(t).GetGoodbye() == nil {
	}
	fs.end(io.EOF)
	r := wait(t, done)
	require.NoError(t, r.Err)
}

func TestShutdownIsBoundedWhenTheServerNeverCloses(t *testing.T) {
	ctx, cancel := context.WithCancelCause(context.Background())
	fs, done := established(ctx, t, time.Hour, func(c *Config) { c.CloseTimeout = 50 * time.Millisecond })
	cancel(errors.New("certificate renewal was refused"))
	require.Equal(t, "certificate renewal was refused", fs.next(t).GetGoodbye().GetReason())
	r := wait(t, done)
	require.NoError(t, r.Err)
}

func TestConnectFailures(t *testing.T) {
	refused := status.Error(codes.Unavailable, "connection refused")
	r := Run(context.Background(), Config{Connector: &fakeConnector{err: refused}, Facts: facts})
	require.ErrorIs(t, r.Err, refused)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan Result, 1)
	go func() {
		done <- Run(ctx, Config{Connector: &fakeConnector{block: true}, Facts: facts, CloseTimeout: time.Hour})
	}()
	time.Sleep(20 * time.Millisecond)
	cancel()
	r = wait(t, done)
	require.NoError(t, r.Err, "cancelling while connecting is a clean exit, without waiting for CloseTimeout")
}

func TestHeartbeatInterval(t *testing.T) {
	tests := []struct {
		in   *durationpb.Duration
		want time.Duration
	}{
		{nil, DefaultHeartbeatInterval},
		{durationpb.New(0), DefaultHeartbeatInterval},
		{durationpb.New(-time.Second), DefaultHeartbeatInterval},
		{durationpb.New(time.Nanosecond), minHeartbeatInterval},
		{durationpb.New(5 * time.Second), 5 * time.Second},
		{durationpb.New(48 * time.Hour), time.Hour},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, heartbeatInterval(&forlockv1.ServerHello{HeartbeatInterval: tt.in}), "%v", tt.in)
	}
}

func TestHeartbeatsCarryEachNewHealthReportOnce(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	var latest *forlockv1.HealthReport
	set := func(h *forlockv1.HealthReport) {
		mu.Lock()
		defer mu.Unlock()
		latest = h
	}
	health := func() *forlockv1.HealthReport {
		mu.Lock()
		defer mu.Unlock()
		return latest
	}
	first := &forlockv1.HealthReport{Checks: []*forlockv1.CheckResult{{Name: "disk", Status: forlockv1.CheckStatus_CHECK_STATUS_OK}}}
	set(first)
	fs, done := start(ctx, t, func(c *Config) { c.Health = health })
	require.NotNil(t, fs.next(t).GetHello())
	fs.push(serverHello(20 * time.Millisecond))
	require.Same(t, first, fs.next(t).GetHeartbeat().GetHealth(), "the first heartbeat carries the latest report")
	require.Nil(t, fs.next(t).GetHeartbeat().GetHealth(), "an unchanged report is not sent again")

	second := &forlockv1.HealthReport{}
	set(second)
	var hb *forlockv1.Heartbeat
	for hb = fs.next(t).GetHeartbeat(); hb.GetHealth() == nil; hb = fs.next(t).GetHeartbeat() {
	}
	require.Same(t, second, hb.GetHealth())
	cancel()
	<-fs.closed
	fs.end(io.EOF)
	wait(t, done)
}

func TestChangedHealthIsSentAtOnce(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	latest := &forlockv1.HealthReport{}
	health := func() *forlockv1.HealthReport {
		mu.Lock()
		defer mu.Unlock()
		return latest
	}
	changed := make(chan struct{}, 1)
	// An hour between ticks: only the signal can bring the next heartbeat.
	fs, done := established(ctx, t, time.Hour, func(c *Config) { c.Health, c.HealthChanged = health, changed })
	critical := &forlockv1.HealthReport{Checks: []*forlockv1.CheckResult{{Name: "redis", Status: forlockv1.CheckStatus_CHECK_STATUS_CRITICAL}}}
	mu.Lock()
	latest = critical
	mu.Unlock()
	changed <- struct{}{}
	hb := fs.next(t).GetHeartbeat()
	require.Equal(t, uint64(2), hb.GetSeq())
	require.Same(t, critical, hb.GetHealth())
	cancel()
	<-fs.closed
	fs.end(io.EOF)
	wait(t, done)
}
