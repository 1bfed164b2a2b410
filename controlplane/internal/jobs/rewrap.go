package jobs

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// Rewrapper is a KeyWrapper that can move a wrapped key to its current key
// version without the plain key leaving it (Vault Transit's rewrap).
type Rewrapper interface {
	Rewrap(ctx context.Context, keyID string, wrapped []byte) (newKeyID string, newWrapped []byte, err error)
}

// Refresher is a KeyWrapper whose current key version can change outside
// the control plane (a Transit key rotated in Vault): Refresh reads it.
type Refresher interface {
	Refresh(ctx context.Context) error
}

// UnwrapAndWrap re-wraps a data key by unwrapping it and wrapping it again
// with w's current key; the plain key is cleared after.
func UnwrapAndWrap(ctx context.Context, w KeyWrapper, keyID string, wrapped []byte) (string, []byte, error) {
	plain, err := w.Unwrap(ctx, keyID, wrapped)
	if err != nil {
		return "", nil, err
	}
	defer clear(plain)
	newWrapped, err := w.Wrap(ctx, plain)
	if err != nil {
		return "", nil, err
	}
	return w.KeyID(), newWrapped, nil
}

// RewrapResult is what Rewrap did.
type RewrapResult struct {
	Rewrapped, Current int
	KeyID              string
}

// rewrap is one artifact's new wrapped key.
type rewrap struct {
	rpID, artID string
	oldKeyID    string
	oldWrapped  []byte
	newKeyID    string
	newWrapped  []byte
}

// Rewrap re-wraps the data key of every available artifact whose key ID is
// not the key-encryption key's current one, and records the new wrapped keys
// in the catalog. The artifacts' data and headers are not touched. The
// network calls run without e.mu; an artifact changed meanwhile (deleted,
// or re-wrapped by another call) is left as it is.
func (e *Engine) Rewrap(ctx context.Context, dryRun bool) (RewrapResult, error) {
	if e.kek == nil {
		return RewrapResult{}, invalid("this control plane has no key-encryption key")
	}
	if r, ok := e.kek.(Refresher); ok {
		if err := r.Refresh(ctx); err != nil {
			return RewrapResult{}, fmt.Errorf("read the key-encryption key's current version: %w", err)
		}
	}
	res := RewrapResult{KeyID: e.kek.KeyID()}
	var todo []rewrap
	if err := e.store.ScanRestorePoints("", func(rp *forlockv1.RestorePoint) bool {
		for _, a := range rp.GetArtifacts() {
			if a.GetState() != forlockv1.ArtifactState_ARTIFACT_STATE_AVAILABLE {
				continue
			}
			if a.GetKeyId() == res.KeyID {
				res.Current++
				continue
			}
			todo = append(todo, rewrap{rpID: rp.GetId(), artID: a.GetId(), oldKeyID: a.GetKeyId(), oldWrapped: a.GetWrappedKey()})
		}
		return true
	}); err != nil {
		return res, err
	}
	if dryRun {
		res.Rewrapped = len(todo)
		return res, nil
	}
	for i := range todo {
		r := &todo[i]
		var err error
		if rw, ok := e.kek.(Rewrapper); ok {
			r.newKeyID, r.newWrapped, err = rw.Rewrap(ctx, r.oldKeyID, r.oldWrapped)
		} else {
			r.newKeyID, r.newWrapped, err = UnwrapAndWrap(ctx, e.kek, r.oldKeyID, r.oldWrapped)
		}
		if err != nil {
			return res, fmt.Errorf("rewrap the key of artifact %s: %w", r.artID, err)
		}
	}
	done := make(chan struct{})
	e.mu.Lock()
	for _, r := range todo {
		rp := e.pendingRestorePoint(r.rpID)
		if rp == nil {
			continue
		}
		for _, a := range rp.GetArtifacts() {
			if a.GetId() == r.artID && a.GetKeyId() == r.oldKeyID && bytes.Equal(a.GetWrappedKey(), r.oldWrapped) {
				a.KeyId, a.WrappedKey = r.newKeyID, r.newWrapped
				res.Rewrapped++
			}
		}
	}
	e.afterCommit(func() { close(done) })
	e.mu.Unlock()
	select {
	case <-done:
		return res, nil
	case <-ctx.Done():
		return res, errors.Join(ctx.Err(), errors.New("the new keys are committed shortly; run rewrap again to check"))
	}
}
