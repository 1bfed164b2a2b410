package dockerrt

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/client"
)

// stderrKeep bounds the stderr an exec keeps for its error message.
const stderrKeep = 4 << 10

// ExecResult is how a command run in a container ended.
type ExecResult struct {
	// ExitCode is the command's exit status.
	ExitCode int
	// Stderr is the end of what the command wrote to stderr.
	Stderr string
}

// Err returns an error naming the command and its stderr when it failed.
func (r ExecResult) Err(what string) error {
	if r.ExitCode == 0 {
		return nil
	}
	return fmt.Errorf("%s exited with status %d: %s", what, r.ExitCode, r.Stderr)
}

// Exec runs cmd in the container serving service (see Logs for how a
// service maps to a container) as user, streaming stdin (if not nil) to it
// and its stdout to stdout, without a temporary file on either side. It
// returns when the command has ended; cancelling ctx cuts its streams, which
// ends a command that reads or writes them.
func (r *Runtime) Exec(ctx context.Context, service, user string, cmd []string, stdin io.Reader, stdout io.Writer) (ExecResult, error) {
	id, cname, err := r.find(ctx, service)
	if err != nil {
		return ExecResult{}, err
	}
	return r.execIn(ctx, id, cname, user, cmd, stdin, stdout)
}

// execIn is Exec in the container id (named cname).
func (r *Runtime) execIn(ctx context.Context, id, cname, user string, cmd []string, stdin io.Reader, stdout io.Writer) (ExecResult, error) {
	created, err := r.cli.ExecCreate(ctx, id, client.ExecCreateOptions{
		User: user, Cmd: cmd, AttachStdin: stdin != nil, AttachStdout: true, AttachStderr: true,
	})
	if err != nil {
		return ExecResult{}, fmt.Errorf("exec in container %s: %w", cname, err)
	}
	att, err := r.cli.ExecAttach(ctx, created.ID, client.ExecAttachOptions{})
	if err != nil {
		return ExecResult{}, fmt.Errorf("attach to exec in container %s: %w", cname, err)
	}
	defer att.Close()
	stop := context.AfterFunc(ctx, att.Close)
	defer stop()

	var wg sync.WaitGroup
	var stdinErr error
	if stdin != nil {
		wg.Go(func() {
			_, stdinErr = io.Copy(att.Conn, stdin)
			// Once every byte is written, a process that exits at once
			// closes the stream before CloseWrite: then the connection is
			// already closed, and nothing was lost.
			if cerr := att.CloseWrite(); stdinErr == nil && !errors.Is(cerr, net.ErrClosed) {
				stdinErr = cerr
			}
		})
	}
	stderr := &tail{max: stderrKeep}
	_, copyErr := stdcopy.StdCopy(stdout, stderr, att.Reader)
	att.Close()
	wg.Wait()
	if ctx.Err() != nil {
		return ExecResult{}, ctx.Err()
	}
	if copyErr != nil {
		return ExecResult{}, fmt.Errorf("stream of exec in container %s: %w", cname, copyErr)
	}
	res, err := r.waitExec(ctx, created.ID)
	res.Stderr = stderr.String()
	if err != nil {
		return res, fmt.Errorf("exec in container %s: %w", cname, err)
	}
	if stdinErr != nil && !errors.Is(stdinErr, io.ErrClosedPipe) && res.ExitCode == 0 {
		return res, fmt.Errorf("stdin of exec in container %s: %w", cname, stdinErr)
	}
	return res, nil
}

// waitExec waits for an exec whose streams have ended to be reported done.
func (r *Runtime) waitExec(ctx context.Context, id string) (ExecResult, error) {
	for delay := 5 * time.Millisecond; ; delay = min(2*delay, 200*time.Millisecond) {
		ins, err := r.cli.ExecInspect(ctx, id, client.ExecInspectOptions{})
		if err != nil {
			return ExecResult{}, err
		}
		if !ins.Running {
			return ExecResult{ExitCode: ins.ExitCode}, nil
		}
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return ExecResult{}, ctx.Err()
		}
	}
}

// tail keeps the last max bytes written to it.
type tail struct {
	max int
	buf []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = t.buf[over:]
	}
	return len(p), nil
}

func (t *tail) String() string { return string(t.buf) }
