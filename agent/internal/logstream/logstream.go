// Package logstream answers a control plane's LogRequest: it reads the asked
// services' container logs, keeps error lines only if asked, and sends the
// lines in batches on the request's own PushLogs stream, never on the
// control stream. When the control plane ends the stream (its reader has
// gone) every log reader stops.
package logstream

import (
	"context"
	"errors"
	"fmt"
	"time"

	"golang.org/x/sync/errgroup"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/forlock/fleet/agent/internal/dockerrt"
	"github.com/forlock/fleet/internal/logfilter"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// Batching: a batch goes out when it holds batchLines lines or flushEvery
// has passed since its first line.
const (
	batchLines  = 200
	flushEvery  = 100 * time.Millisecond
	defaultTail = 100
)

// Services are the services of a Forlock node.
var Services = []string{"api", "postgres", "redis", "nginx"}

// Source reads one service's log.
type Source interface {
	Logs(ctx context.Context, service string, o dockerrt.LogOptions, fn func(dockerrt.LogLine) error) error
}

// Sender is the agent's end of a PushLogs stream.
type Sender interface {
	Send(*forlockv1.PushLogsRequest) error
}

// Serve answers req on send until the logs end (without follow), ctx ends,
// or the stream fails. A failure to read the logs is sent as the stream's
// last message so the reader learns why.
func Serve(ctx context.Context, req *forlockv1.LogRequest, src Source, send Sender) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	q := req.GetQuery()
	services := q.GetServices()
	if len(services) == 0 {
		services = Services
	}
	opts := dockerrt.LogOptions{Follow: q.GetFollow(), Tail: int(q.GetTail())}
	if opts.Tail == 0 {
		opts.Tail = defaultTail
	}
	if d := q.GetSince().AsDuration(); d > 0 {
		opts.Since = time.Now().Add(-d)
	}

	lines := make(chan *forlockv1.LogLine, batchLines)
	g, gctx := errgroup.WithContext(ctx)
	for _, svc := range services {
		g.Go(func() error {
			return src.Logs(gctx, svc, opts, func(l dockerrt.LogLine) error {
				if q.GetErrorsOnly() && !logfilter.IsError(l.Text) {
					return nil
				}
				m := &forlockv1.LogLine{Service: svc, Stream: l.Stream, Text: l.Text}
				if !l.Time.IsZero() {
					m.Time = timestamppb.New(l.Time)
				}
				select {
				case lines <- m:
					return nil
				case <-gctx.Done():
					return gctx.Err()
				}
			})
		})
	}
	readErr := make(chan error, 1)
	go func() {
		readErr <- g.Wait()
		close(lines)
	}()

	if err := send.Send(&forlockv1.PushLogsRequest{RequestId: req.GetRequestId()}); err != nil {
		return fmt.Errorf("open log stream: %w", err)
	}
	if err := forward(lines, send); err != nil {
		cancel()
		for range lines { // let the readers end
		}
		return err
	}
	if err := <-readErr; err != nil && !errors.Is(err, context.Canceled) {
		return send.Send(&forlockv1.PushLogsRequest{Error: err.Error()})
	}
	return nil
}

// forward sends the lines in batches until lines is closed.
func forward(lines <-chan *forlockv1.LogLine, send Sender) error {
	var batch []*forlockv1.LogLine
	timer := time.NewTimer(flushEvery)
	timer.Stop()
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := send.Send(&forlockv1.PushLogsRequest{Lines: batch})
		batch = nil
		return err
	}
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				return flush()
			}
			if len(batch) == 0 {
				timer.Reset(flushEvery)
			}
			batch = append(batch, l)
			if len(batch) >= batchLines {
				timer.Stop()
				if err := flush(); err != nil {
					return err
				}
			}
		case <-timer.C:
			if err := flush(); err != nil {
				return err
			}
		}
	}
}
