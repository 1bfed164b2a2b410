package commands

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// scriptedStream replays messages, then ends with err (io.EOF for a clean
// end).
type scriptedStream struct {
	msgs []*forlockv1.WatchJobResponse
	err  error
}

func (s *scriptedStream) Recv() (*forlockv1.WatchJobResponse, error) {
	if len(s.msgs) == 0 {
		return nil, s.err
	}
	m := s.msgs[0]
	s.msgs = s.msgs[1:]
	return m, nil
}

// scriptedSource hands out one scripted stream per watch and records how
// each watch was asked for.
type scriptedSource struct {
	streams   []*scriptedStream
	fromStart []bool
	final     *forlockv1.Job
	gets      int
}

func (s *scriptedSource) watch(_ context.Context, fromStart bool) (eventStream, error) {
	s.fromStart = append(s.fromStart, fromStart)
	if len(s.streams) == 0 {
		return nil, status.Error(codes.Unavailable, "no more scripted streams")
	}
	st := s.streams[0]
	s.streams = s.streams[1:]
	return st, nil
}

func (s *scriptedSource) get(context.Context) (*forlockv1.Job, error) {
	s.gets++
	return s.final, nil
}

// recordingView keeps what the follower showed.
type recordingView struct {
	seqs      []uint64
	snapshots int
	retries   []time.Duration
}

func (v *recordingView) snapshot(*forlockv1.Job)           { v.snapshots++ }
func (v *recordingView) event(ev *forlockv1.JobEvent)      { v.seqs = append(v.seqs, ev.GetSeq()) }
func (v *recordingView) retrying(_ error, d time.Duration) { v.retries = append(v.retries, d) }

func snapMsg(state forlockv1.JobState) *forlockv1.WatchJobResponse {
	return &forlockv1.WatchJobResponse{Msg: &forlockv1.WatchJobResponse_Snapshot{Snapshot: &forlockv1.Job{Id: "j1", State: state}}}
}

func evMsg(seq uint64) *forlockv1.WatchJobResponse {
	return &forlockv1.WatchJobResponse{Msg: &forlockv1.WatchJobResponse_Event{Event: &forlockv1.JobEvent{Seq: seq, TaskId: "t1"}}}
}

func evMsgs(from, to uint64) []*forlockv1.WatchJobResponse {
	var out []*forlockv1.WatchJobResponse
	for s := from; s <= to; s++ {
		out = append(out, evMsg(s))
	}
	return out
}

func noSleep(ctx context.Context, _ time.Duration) error { return ctx.Err() }

func TestFollowerRewatchSkipsSeenEvents(t *testing.T) {
	broken := status.Error(codes.Unavailable, "error reading from server: EOF")
	src := &scriptedSource{
		final: &forlockv1.Job{Id: "j1", State: jRunning},
		streams: []*scriptedStream{
			// Events 1-4, then the control plane dies.
			{msgs: append([]*forlockv1.WatchJobResponse{snapMsg(jRunning)}, evMsgs(1, 4)...), err: broken},
			// It is still down.
			{err: broken},
			// Back: the replay starts again at 1 and goes on to 6, then a
			// graceful shutdown closes the stream before the job ends.
			{msgs: append([]*forlockv1.WatchJobResponse{snapMsg(jRunning)}, evMsgs(1, 6)...), err: io.EOF},
			// The last watch replays everything up to the end.
			{msgs: append([]*forlockv1.WatchJobResponse{snapMsg(jPartial)}, evMsgs(1, 9)...), err: io.EOF},
		},
	}
	view := &recordingView{}
	f := &follower{src: &endAfterGets{scriptedSource: src, endAt: 2, ended: &forlockv1.Job{Id: "j1", State: jPartial}}, view: view, fromStart: true, sleep: noSleep}
	job, err := f.run(context.Background())
	require.NoError(t, err)
	require.Equal(t, jPartial, job.GetState())
	require.Equal(t, []uint64{1, 2, 3, 4, 5, 6, 7, 8, 9}, view.seqs, "every event once, in order")
	require.Equal(t, 3, view.snapshots)
	require.Equal(t, []bool{true, true, true, true}, src.fromStart)
	require.Equal(t, []time.Duration{250 * time.Millisecond, 500 * time.Millisecond, 250 * time.Millisecond}, view.retries,
		"backoff doubles while the control plane is down and resets once messages flow")
}

// endAfterGets reports the job running until the endAt-th GetJob.
type endAfterGets struct {
	*scriptedSource
	endAt int
	ended *forlockv1.Job
}

func (s *endAfterGets) get(ctx context.Context) (*forlockv1.Job, error) {
	j, _ := s.scriptedSource.get(ctx)
	if s.gets >= s.endAt {
		return s.ended, nil
	}
	return j, nil
}

func TestFollowerFromNowWithoutEventsStaysFromNow(t *testing.T) {
	src := &scriptedSource{
		final: &forlockv1.Job{Id: "j1", State: jSucceeded},
		streams: []*scriptedStream{
			{msgs: []*forlockv1.WatchJobResponse{snapMsg(jRunning)}, err: status.Error(codes.Unavailable, "down")},
			{msgs: []*forlockv1.WatchJobResponse{snapMsg(jRunning), evMsg(7)}, err: status.Error(codes.Unavailable, "down")},
			{msgs: []*forlockv1.WatchJobResponse{snapMsg(jSucceeded), evMsg(6), evMsg(7), evMsg(8)}, err: io.EOF},
		},
	}
	view := &recordingView{}
	job, err := (&follower{src: src, view: view, sleep: noSleep}).run(context.Background())
	require.NoError(t, err)
	require.Equal(t, jSucceeded, job.GetState())
	require.Equal(t, []bool{false, false, true}, src.fromStart,
		"no position before the first event: watch from now; after one: replay and skip")
	require.Equal(t, []uint64{7, 8}, view.seqs)
}

func TestFollowerStopsOnPermanentErrors(t *testing.T) {
	for _, code := range []codes.Code{codes.NotFound, codes.Unauthenticated, codes.PermissionDenied, codes.InvalidArgument} {
		t.Run(code.String(), func(t *testing.T) {
			src := &scriptedSource{streams: []*scriptedStream{{err: status.Error(code, "no")}}}
			_, err := (&follower{src: src, view: &recordingView{}, sleep: noSleep}).run(context.Background())
			require.Equal(t, code, status.Code(err))
			require.Len(t, src.fromStart, 1, "no second watch")
		})
	}
}

func TestFollowerEndsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	src := &scriptedSource{streams: []*scriptedStream{{err: status.Error(codes.Unavailable, "down")}}}
	view := &recordingView{}
	f := &follower{src: src, view: view, sleep: func(context.Context, time.Duration) error {
		cancel() // Ctrl-C while waiting to watch again
		return context.Canceled
	}}
	_, err := f.run(ctx)
	require.ErrorIs(t, err, context.Canceled)
}

func TestBackoff(t *testing.T) {
	var got []time.Duration
	for i := range 7 {
		got = append(got, backoff(i))
	}
	require.Equal(t, []time.Duration{250 * time.Millisecond, 500 * time.Millisecond, time.Second, 2 * time.Second,
		4 * time.Second, 5 * time.Second, 5 * time.Second}, got)
}

func TestRetryable(t *testing.T) {
	require.True(t, retryable(status.Error(codes.Unavailable, "")))
	require.True(t, retryable(errStreamEnded))
	require.False(t, retryable(status.Error(codes.NotFound, "")))
	require.False(t, retryable(errors.New("plain")))
}

// syncBuffer is a bytes.Buffer safe for a writer goroutine and a reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
