package api

import (
	"context"
	"errors"

	"github.com/forlock/fleet/controlplane/internal/store"
	"github.com/forlock/fleet/controlplane/internal/tokens"
)

// AuthGate is what Enroll tells about the join token it was given
// (auth.Checker): a refused one is logged and counted against the client's
// address, an accepted one frees its connection from the per-address cap.
type AuthGate interface {
	// Refuse returns err, or ResourceExhausted while the address is
	// blocked. err's message must hold no secret.
	Refuse(ctx context.Context, err error) error
	// Accept records a valid credential on the call's connection.
	Accept(ctx context.Context)
}

// checkJoinToken refuses a malformed or unknown join token before the
// enrollment's write transaction: a wrong token costs one read, never bbolt's
// single writer, and counts as a failed authentication. Whether a known
// token is still usable is decided inside the enrollment itself.
func (a *AgentAPI) checkJoinToken(ctx context.Context, secret string) (tokens.Token, error) {
	tok, err := tokens.ParseJoin(secret)
	if err != nil {
		a.enrollFailed("token_malformed")
		return tokens.Token{}, a.refuse(ctx, invalid("join token is malformed: pass the fjt_... string printed by 'forlockctl tokens create'"))
	}
	if err := a.Store.CheckJoinToken(tok.ID, tok.Hash); err != nil {
		if errors.Is(err, store.ErrTokenUnknown) {
			a.enrollFailed("token_unknown")
			return tokens.Token{}, a.refuse(ctx, toStatus(ctx, a.Log, enrollError(tok.ID, err)))
		}
		return tokens.Token{}, toStatus(ctx, a.Log, err)
	}
	if a.Gate != nil {
		a.Gate.Accept(ctx)
	}
	return tok, nil
}

func (a *AgentAPI) refuse(ctx context.Context, err error) error {
	if a.Gate == nil {
		return err
	}
	return a.Gate.Refuse(ctx, err)
}

func (a *AgentAPI) enrollFailed(reason string) {
	if a.EnrollFailed != nil {
		a.EnrollFailed(reason)
	}
}
