package dockerrt

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/client"
)

// MaxLogLine bounds one log line; longer lines are cut.
const MaxLogLine = 64 << 10

// LogOptions selects log lines.
type LogOptions struct {
	// Follow keeps reading new lines until ctx ends.
	Follow bool
	// Tail is the number of lines before following; 0 means all.
	Tail int
	// Since drops older lines; zero means no limit.
	Since time.Time
}

// LogLine is one line of a container's log.
type LogLine struct {
	Time   time.Time
	Stream string // "stdout" or "stderr"
	Text   string
}

// Logs reads the log of the container that serves service (an expected
// entry equal to service or ending in "-"+service, or a container whose
// compose service is service) and calls fn for each line, in order per
// stream, until the log ends, ctx ends or fn returns an error.
func (r *Runtime) Logs(ctx context.Context, service string, o LogOptions, fn func(LogLine) error) error {
	id, name, err := r.find(ctx, service)
	if err != nil {
		return err
	}
	ins, err := r.cli.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil {
		return fmt.Errorf("inspect container %s: %w", name, err)
	}
	opts := client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true, Timestamps: true, Follow: o.Follow, Tail: "all"}
	if o.Tail > 0 {
		opts.Tail = strconv.Itoa(o.Tail)
	}
	if !o.Since.IsZero() {
		opts.Since = strconv.FormatInt(o.Since.Unix(), 10)
	}
	rc, err := r.cli.ContainerLogs(ctx, id, opts)
	if err != nil {
		return fmt.Errorf("read logs of container %s: %w", name, err)
	}
	defer func() { _ = rc.Close() }()

	lines := make(chan LogLine, 64)
	errc := make(chan error, 1)
	go func() {
		defer close(lines)
		if ins.Container.Config != nil && ins.Container.Config.Tty {
			errc <- splitLines(ctx, rc, "stdout", lines)
			return
		}
		outR, outW := io.Pipe()
		errR, errW := io.Pipe()
		done := make(chan error, 2)
		go func() { done <- splitLines(ctx, outR, "stdout", lines) }()
		go func() { done <- splitLines(ctx, errR, "stderr", lines) }()
		_, cerr := stdcopy.StdCopy(outW, errW, rc)
		outW.CloseWithError(cerr)
		errW.CloseWithError(cerr)
		e1, e2 := <-done, <-done
		switch {
		case cerr != nil:
			errc <- cerr
		case e1 != nil:
			errc <- e1
		default:
			errc <- e2
		}
	}()
	for l := range lines {
		if err := fn(l); err != nil {
			_ = rc.Close()
			for range lines { // let the readers finish
			}
			return err
		}
	}
	if err := <-errc; err != nil && ctx.Err() == nil {
		return fmt.Errorf("read logs of container %s: %w", name, err)
	}
	return ctx.Err()
}

// splitLines turns a timestamped log stream into lines.
func splitLines(ctx context.Context, rd io.Reader, stream string, out chan<- LogLine) error {
	sc := bufio.NewScanner(rd)
	sc.Buffer(make([]byte, 0, 64<<10), 4*MaxLogLine)
	for sc.Scan() {
		l := LogLine{Stream: stream, Text: sc.Text()}
		if ts, rest, ok := strings.Cut(l.Text, " "); ok {
			if t, err := time.Parse(time.RFC3339Nano, ts); err == nil {
				l.Time, l.Text = t, rest
			}
		}
		if len(l.Text) > MaxLogLine {
			l.Text = l.Text[:MaxLogLine]
		}
		select {
		case out <- l:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return sc.Err()
}

// Serves reports whether the configured container name serves service: it
// is the service's name or ends in "-<service>" (forlock-api, web1-api).
func Serves(name, service string) bool {
	return name == service || strings.HasSuffix(name, "-"+service)
}

// find returns the container serving service.
func (r *Runtime) find(ctx context.Context, service string) (id, cname string, err error) {
	filters := make(client.Filters)
	if r.cfg.Project != "" {
		filters.Add("label", ProjectLabel+"="+r.cfg.Project)
	}
	list, err := r.cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: filters})
	if err != nil {
		return "", "", fmt.Errorf("list containers of %s: %w", r.Describe(), err)
	}
	for _, want := range r.cfg.Names {
		if !Serves(want, service) {
			continue
		}
		for _, s := range list.Items {
			if name(s) == want || s.Labels[ServiceLabel] == want {
				return s.ID, name(s), nil
			}
		}
	}
	if r.cfg.Project != "" {
		for _, s := range list.Items {
			if s.Labels[ServiceLabel] == service {
				return s.ID, name(s), nil
			}
		}
	}
	return "", "", fmt.Errorf("no container for service %q among %s", service, strings.Join(r.cfg.Names, ", "))
}
