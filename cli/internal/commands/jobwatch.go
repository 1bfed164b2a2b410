package commands

import (
	"context"
	"errors"
	"io"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// eventStream is the receiving half of a WatchJob call.
type eventStream interface {
	Recv() (*forlockv1.WatchJobResponse, error)
}

// jobSource is what following one job needs from the control plane.
type jobSource interface {
	// watch opens a WatchJob stream; it ends when ctx does.
	watch(ctx context.Context, fromStart bool) (eventStream, error)
	// get fetches the job with its tasks' details.
	get(ctx context.Context) (*forlockv1.Job, error)
}

// jobView shows a followed job as it changes.
type jobView interface {
	snapshot(j *forlockv1.Job)
	event(ev *forlockv1.JobEvent)
	// retrying says the watch broke with err and starts again after wait.
	retrying(err error, wait time.Duration)
}

// errStreamEnded: the control plane closed the watch before the job ended,
// e.g. while shutting down.
var errStreamEnded = errors.New("the control plane closed the watch before the job ended")

// follower watches one job until it ends. When the stream breaks (the
// control plane restarts, the network drops) it watches again with backoff,
// replaying from the start and skipping events whose seq it has already
// passed on, so the view sees every event exactly once and in order.
type follower struct {
	src  jobSource
	view jobView
	// fromStart replays the history on the first watch; later watches
	// replay whenever an event has been seen, to continue after it.
	fromStart bool
	// sleep waits d or until ctx ends; nil means a real timer.
	sleep func(ctx context.Context, d time.Duration) error

	lastSeq uint64
}

// Backoff between watches: doubling from backoffMin to backoffMax, reset by
// every message received.
const (
	backoffMin = 250 * time.Millisecond
	backoffMax = 5 * time.Second
)

func backoff(attempt int) time.Duration {
	d := backoffMin
	for range attempt {
		d *= 2
		if d >= backoffMax {
			return backoffMax
		}
	}
	return d
}

// run follows the job until it ends and returns it as GetJob gives it
// (with task details). It returns ctx's error when ctx ends first, and the
// first error that a new watch cannot cure (not found, refused token).
func (f *follower) run(ctx context.Context) (*forlockv1.Job, error) {
	sleep := f.sleep
	if sleep == nil {
		sleep = sleepCtx
	}
	fromStart := f.fromStart
	attempt := 0
	for {
		job, err := f.watchOnce(ctx, fromStart, &attempt)
		if err == nil {
			return job, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if !retryable(err) {
			return nil, err
		}
		// Without a seen event a from-now watch has no position to resume
		// from; its fresh snapshot brings the view up to date instead.
		fromStart = f.fromStart || f.lastSeq > 0
		wait := backoff(attempt)
		attempt++
		f.view.retrying(err, wait)
		if err := sleep(ctx, wait); err != nil {
			return nil, err
		}
	}
}

// watchOnce runs one WatchJob stream to its end. A clean end is confirmed
// with GetJob: the job has ended, or the stream is opened again.
func (f *follower) watchOnce(ctx context.Context, fromStart bool, attempt *int) (*forlockv1.Job, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := f.src.watch(ctx, fromStart)
	if err != nil {
		return nil, err
	}
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			job, err := f.src.get(ctx)
			if err != nil {
				return nil, err
			}
			if !jobEnded(job.GetState()) {
				return nil, errStreamEnded
			}
			return job, nil
		}
		if err != nil {
			return nil, err
		}
		*attempt = 0
		switch m := msg.GetMsg().(type) {
		case *forlockv1.WatchJobResponse_Snapshot:
			f.view.snapshot(m.Snapshot)
		case *forlockv1.WatchJobResponse_Event:
			if m.Event.GetSeq() <= f.lastSeq {
				continue
			}
			f.lastSeq = m.Event.GetSeq()
			f.view.event(m.Event)
		}
	}
}

// retryable reports whether watching again may succeed: the control plane
// was unreachable, restarting, or slow, not refusing.
func retryable(err error) bool {
	if errors.Is(err, errStreamEnded) {
		return true
	}
	switch status.Code(err) {
	case codes.Unavailable, codes.Aborted, codes.DeadlineExceeded:
		return true
	}
	return false
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// grpcJobSource follows a job through the JobService API; unary calls get
// the per-call timeout, streams none.
type grpcJobSource struct {
	c       forlockv1.JobServiceClient
	id      string
	timeout time.Duration
}

func (s grpcJobSource) watch(ctx context.Context, fromStart bool) (eventStream, error) {
	// The status error stays unwrapped: explainRPC and retryable read it.
	return s.c.WatchJob(ctx, &forlockv1.WatchJobRequest{Id: s.id, FromStart: fromStart})
}

func (s grpcJobSource) get(ctx context.Context) (*forlockv1.Job, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	resp, err := s.c.GetJob(ctx, &forlockv1.GetJobRequest{Id: s.id})
	if err != nil {
		return nil, err
	}
	return resp.GetJob(), nil
}
