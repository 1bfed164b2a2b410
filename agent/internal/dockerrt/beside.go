package dockerrt

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
)

// helperLabel marks the one-off containers RunBeside creates, so that one
// left behind (the agent died mid-run) can be found and removed.
const helperLabel = "com.forlock.fleet.helper"

// helperRemoveTimeout bounds the removal of a helper container, which runs
// even when the caller's context is cancelled.
const helperRemoveTimeout = 30 * time.Second

// RunBeside runs cmd to its end in a one-off container beside the one serving
// service: the same image, the same volumes (HostConfig.VolumesFrom the
// service's container), as user (empty: the image's user), with no network
// (NetworkMode "none"), the entrypoint replaced by cmd[0] and the command by cmd[1:].
// It works whether the service's container runs or is stopped. It returns the
// exit code and the tail of stderr (ExecResult, as Exec does), and always
// removes the one-off container, even when ctx is cancelled (use a short
// context.WithoutCancel+timeout for the removal). Cancelling ctx kills it.
//
// The one-off container is named "<service's container>-forlock-helper-<8
// hex digits>" and labelled com.forlock.fleet.helper=true; its stdout is discarded.
func (r *Runtime) RunBeside(ctx context.Context, service, user string, cmd []string) (res ExecResult, err error) {
	if len(cmd) == 0 {
		return ExecResult{}, errors.New("run helper: empty command")
	}
	created, name, cname, err := r.createBeside(ctx, service, "helper",
		func(string) *container.Config {
			return &container.Config{User: user, Entrypoint: cmd[:1], Cmd: cmd[1:], AttachStderr: true, Labels: map[string]string{helperLabel: "true"}}
		},
		func(id string) *container.HostConfig {
			return &container.HostConfig{VolumesFrom: []string{id}, NetworkMode: "none"}
		})
	if err != nil {
		return ExecResult{}, err
	}
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), helperRemoveTimeout)
		defer cancel()
		_, rerr := r.cli.ContainerRemove(rctx, created.ID, client.ContainerRemoveOptions{Force: true})
		if rerr != nil && err == nil {
			err = fmt.Errorf("run helper in container %s: remove %s (remove it with docker rm -f %s): %w", cname, name, name, rerr)
		}
	}()

	// Attach and wait before starting: no output and no exit is missed.
	att, err := r.cli.ContainerAttach(ctx, created.ID, client.ContainerAttachOptions{Stream: true, Stderr: true})
	if err != nil {
		return ExecResult{}, fmt.Errorf("run helper in container %s: attach to %s: %w", cname, name, err)
	}
	defer att.Close()
	stop := context.AfterFunc(ctx, att.Close)
	defer stop()

	wctx, stopWait := context.WithCancel(ctx)
	wait := r.cli.ContainerWait(wctx, created.ID, client.ContainerWaitOptions{Condition: container.WaitConditionNextExit})
	waited := false
	defer func() {
		stopWait()
		if !waited { // the client's goroutine sends exactly one value
			select {
			case <-wait.Result:
			case werr := <-wait.Error:
				_ = werr // the wait was cancelled: nothing to report
			}
		}
	}()

	if _, err := r.cli.ContainerStart(ctx, created.ID, client.ContainerStartOptions{}); err != nil {
		return ExecResult{}, fmt.Errorf("run helper in container %s: start %s: %w", cname, name, err)
	}
	stderr := &tail{max: stderrKeep}
	_, copyErr := stdcopy.StdCopy(io.Discard, stderr, att.Reader)
	if ctx.Err() != nil {
		return ExecResult{}, ctx.Err()
	}
	if copyErr != nil {
		return ExecResult{}, fmt.Errorf("run helper in container %s: stream of %s: %w", cname, name, copyErr)
	}
	select {
	case w := <-wait.Result:
		waited = true
		if w.Error != nil && w.Error.Message != "" {
			return ExecResult{}, fmt.Errorf("run helper in container %s: wait for %s: %s", cname, name, w.Error.Message)
		}
		return ExecResult{ExitCode: int(w.StatusCode), Stderr: stderr.String()}, nil
	case werr := <-wait.Error:
		waited = true
		if ctx.Err() != nil {
			return ExecResult{}, ctx.Err()
		}
		return ExecResult{}, fmt.Errorf("run helper in container %s: wait for %s: %w", cname, name, werr)
	}
}

// createBeside creates (does not start) a one-off container beside the
// one serving service, from that container's image ID (the tag may have
// moved), named "<its name>-forlock-<role>-<8 hex digits>". config makes all
// but the image from the service container's name; host makes the host
// config from its ID.
func (r *Runtime) createBeside(ctx context.Context, service, role string, config func(cname string) *container.Config, host func(id string) *container.HostConfig) (created client.ContainerCreateResult, name, cname string, err error) {
	id, cname, err := r.find(ctx, service)
	if err != nil {
		return created, "", "", err
	}
	ins, err := r.cli.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil {
		return created, "", cname, fmt.Errorf("%s container for %s: inspect: %w", role, cname, err)
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b) // never fails
	name = cname + "-forlock-" + role + "-" + hex.EncodeToString(b)
	cfg := config(cname)
	cfg.Image = ins.Container.Image
	// Not the image's healthcheck: it probes a server this container does
	// not run as the image expects (no network), and when a probe times
	// out Docker kills its shell, orphaning the probe to PID 1. A scratch
	// PostgreSQL is PID 1, and a child it did not start exiting with
	// status 2 (pg_isready's "no response") is to it a crashed backend:
	// it kills every session and recovers, failing the drill.
	cfg.Healthcheck = &container.HealthConfig{Test: []string{"NONE"}}
	created, err = r.cli.ContainerCreate(ctx, client.ContainerCreateOptions{Name: name, Config: cfg, HostConfig: host(id)})
	if err != nil {
		return created, name, cname, fmt.Errorf("%s container for %s: create %s: %w", role, cname, name, err)
	}
	return created, name, cname, nil
}
