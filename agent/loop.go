package agent

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/forlock/fleet/agent/internal/backoff"
	"github.com/forlock/fleet/agent/internal/identity"
	"github.com/forlock/fleet/agent/internal/tasks"
)

// loop is the agent's life after start: enroll when needed, then one
// control session after another, with backoff between attempts.
type loop struct {
	a     *Agent
	store *identity.Store
	bo    *backoff.Backoff
	// stableAfter is how long a session must last to reset the backoff, so
	// that a control plane which accepts and drops at once is not hammered.
	stableAfter time.Duration
	// refused says why the control plane refused the current identity; nil
	// while it is accepted (or not yet tried).
	refused error
}

// prepare makes sure there is an identity worth connecting with: it
// enrolls when there is none, and re-enrolls when the current one was
// refused or has expired and a join token is at hand. It returns false
// after waiting out a backoff delay, to be called again.
func (l *loop) prepare(ctx context.Context) bool {
	a := l.a
	id := a.identity()
	if id != nil && l.refused == nil && id.Expired(time.Now()) {
		l.refused = fmt.Errorf("the node certificate expired at %s", id.Leaf().NotAfter.UTC().Format(time.RFC3339))
	}
	if id != nil && l.refused == nil {
		return true
	}
	err := a.enroll(ctx, l.store)
	switch {
	case err == nil:
		l.refused = nil
		return true
	case ctx.Err() != nil:
		return false
	case id == nil || !errors.Is(err, errNoJoinToken):
		a.logEnrollError(err, l.bo.Ceiling())
		_ = backoff.Wait(ctx, l.bo.Next())
		return false
	}
	// Refused or expired, and no token: say what is needed, and keep trying
	// the identity we have in case the refusal was temporary.
	expired := id.Expired(time.Now())
	msg := "this node's identity was refused: give the agent a fresh join token (--join-token-file)"
	if expired {
		msg = "this node's certificate expired: give the agent a fresh join token (--join-token-file)"
	}
	a.log.Error(msg, "node_id", id.NodeID, "reason", l.refused.Error(), "join_token", err.Error(),
		"retry_in_max", l.bo.Ceiling().String())
	_ = backoff.Wait(ctx, l.bo.Next())
	return !expired && ctx.Err() == nil
}

// connect runs one control session and waits before the next attempt.
func (l *loop) connect(ctx context.Context, runner *tasks.Runner) {
	a := l.a
	start := time.Now()
	res, renewErr := a.session(ctx, l.store, runner)
	if ctx.Err() != nil {
		return
	}
	if res.Hello != nil {
		l.refused = nil // the identity works
		if time.Since(start) >= l.stableAfter {
			l.bo.Reset()
		}
	}
	if errors.Is(renewErr, errRenewed) {
		a.log.Info("reconnecting with the renewed certificate")
		return
	}
	delay := l.bo.Next()
	if after := res.Goodbye.GetReconnectAfter().AsDuration(); after > 0 {
		delay = goodbyeDelay(after)
	}
	refusal := renewErr
	if refusal == nil && isRefused(res.Err) {
		refusal = res.Err
	}
	attrs := []any{"reconnect_in", delay.Round(time.Millisecond).String()}
	switch {
	case refusal != nil:
		l.refused = refusal
		a.log.Warn("the control plane refused this node's identity", append(attrs, "error", refusal.Error())...)
	case res.Err != nil:
		a.log.Warn("control stream ended", append(attrs, "error", res.Err.Error())...)
	default:
		a.log.Info("control stream closed", attrs...)
	}
	_ = backoff.Wait(ctx, delay)
}
