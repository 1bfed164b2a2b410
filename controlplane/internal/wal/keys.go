// Package wal is the control plane's side of continuous WAL archiving:
// each node's archive keys (issued, wrapped, rotated), the agents' WAL
// reports (checked as hostile input, folded into the store's WAL catalog in
// batches, the archiver's state shown as the node's wal_archive check), and healing a
// gap by taking a new physical base backup.
//
// Archiving is not a task: the agent's archiver runs while the control
// plane is down, so it needs a key of its own. The control plane makes one
// per node (internal/keys.NewDataKey), stores it wrapped by its
// key-encryption key (the one that wraps backup data keys: a local key file
// or Vault Transit), and sends the plain key on the node's control stream
// after the ServerHello and again when it rotates (Config.Rotation, daily by
// default). The agent wraps each WAL file's fresh data key with it. Old keys
// stay while a cataloged WAL range names one; a point-in-time restore gets
// the plain keys its ranges need in its task (TaskKey "archive"). Plain
// keys are never logged, stored or returned by an RPC.
package wal

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/forlock/fleet/controlplane/internal/jobs"
	"github.com/forlock/fleet/controlplane/internal/store"
	"github.com/forlock/fleet/internal/keys"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// DefaultRotation is how long an archive key is current.
const DefaultRotation = 24 * time.Hour

// KeyGrace is how long a key named by no cataloged WAL range is kept
// anyway: an agent may have archived with it while the control plane was
// down and not reported that WAL yet (its report comes after the hello that
// may rotate the key), and a report naming a key the control plane no
// longer has is refused.
const KeyGrace = 30 * 24 * time.Hour

// Keys issues and rotates the nodes' archive keys.
type Keys struct {
	store    *store.Store
	kek      jobs.KeyWrapper
	rotation time.Duration
	now      func() time.Time

	// issue serialises making and re-wrapping keys; the key-encryption
	// key's calls (Vault Transit: up to seconds) run under it, never under
	// idsMu, so a slow Vault does not hold up the WAL reports of the fleet.
	issue sync.Mutex
	idsMu sync.Mutex
	// ids caches each node's key IDs, loaded on first use, so that a WAL
	// report's key IDs are checked without a read of the store.
	ids map[string][]string
}

// NewKeys makes a Keys. rotation 0 means DefaultRotation; now nil means
// time.Now.
func NewKeys(st *store.Store, kek jobs.KeyWrapper, rotation time.Duration, now func() time.Time) *Keys {
	if rotation <= 0 {
		rotation = DefaultRotation
	}
	if now == nil {
		now = time.Now
	}
	return &Keys{store: st, kek: kek, rotation: rotation, now: now, ids: map[string][]string{}}
}

// keyIDs returns a node's key IDs, oldest first. Callers hold k.idsMu.
func (k *Keys) keyIDs(nodeID string) ([]string, error) {
	if ids, ok := k.ids[nodeID]; ok {
		return ids, nil
	}
	stored, err := k.store.ArchiveKeys(nodeID)
	if err != nil {
		return nil, err
	}
	ids := []string{}
	for _, s := range stored {
		ids = append(ids, s.KeyID)
	}
	k.ids[nodeID] = ids
	return ids, nil
}

// Owns reports whether keyID is one of the node's archive keys.
func (k *Keys) Owns(nodeID, keyID string) (bool, error) {
	k.idsMu.Lock()
	defer k.idsMu.Unlock()
	ids, err := k.keyIDs(nodeID)
	return slices.Contains(ids, keyID), err
}

// Current returns the node's current archive key in plain, making a new
// one when it has none or the current one is due for rotation. The caller
// sends it on the node's control stream and nowhere else.
func (k *Keys) Current(ctx context.Context, nodeID string) (*forlockv1.ArchiveKey, error) {
	if cur, ok, err := k.current(nodeID); err != nil || ok {
		if err != nil {
			return nil, err
		}
		return k.unwrap(ctx, cur)
	}
	k.issue.Lock()
	defer k.issue.Unlock()
	cur, ok, err := k.current(nodeID) // another stream of the node may have made it meanwhile
	if err != nil {
		return nil, err
	}
	if ok {
		return k.unwrap(ctx, cur)
	}
	now := k.now()
	stored, err := k.store.ArchiveKeys(nodeID)
	if err != nil {
		return nil, err
	}
	plain, err := keys.NewDataKey()
	if err != nil {
		return nil, err
	}
	wrapped, err := k.kek.Wrap(ctx, plain)
	if err != nil {
		return nil, fmt.Errorf("wrap a new archive key: %w", err)
	}
	id := fmt.Sprintf("archive:%s:%s", nodeID, now.UTC().Format("20060102T150405.000Z"))
	if n := len(stored); n > 0 && stored[n-1].KeyID >= id {
		id = stored[n-1].KeyID + "+" // the clock went back: keep IDs in order and unique
	}
	rec := store.ArchiveKey{NodeID: nodeID, KeyID: id, KEKID: k.kek.KeyID(), Wrapped: wrapped, CreatedAt: now, RotateAfter: now.Add(k.rotation)}
	if err := k.store.PutArchiveKey(rec); err != nil {
		return nil, err
	}
	if _, err := k.store.PruneArchiveKeys(nodeID, now.Add(-KeyGrace)); err != nil {
		return nil, err
	}
	k.idsMu.Lock()
	delete(k.ids, nodeID) // reloaded: a new key, and the prune may have removed some
	k.idsMu.Unlock()
	return message(rec, plain), nil
}

// current returns the node's current key record, if it has one not yet
// due for rotation.
func (k *Keys) current(nodeID string) (store.ArchiveKey, bool, error) {
	stored, err := k.store.ArchiveKeys(nodeID)
	if n := len(stored); err == nil && n > 0 && k.now().Before(stored[n-1].RotateAfter) {
		return stored[n-1], true, nil
	}
	return store.ArchiveKey{}, false, err
}

// unwrap returns a stored key in plain.
func (k *Keys) unwrap(ctx context.Context, cur store.ArchiveKey) (*forlockv1.ArchiveKey, error) {
	plain, err := k.kek.Unwrap(ctx, cur.KEKID, cur.Wrapped)
	if err != nil {
		return nil, fmt.Errorf("unwrap archive key %s: %w", cur.KeyID, err)
	}
	return message(cur, plain), nil
}

func message(k store.ArchiveKey, plain []byte) *forlockv1.ArchiveKey {
	return &forlockv1.ArchiveKey{KeyId: k.KeyID, PlainKey: plain, CreatedAt: timestamppb.New(k.CreatedAt), RotateAfter: timestamppb.New(k.RotateAfter)}
}

// Rewrap re-wraps every archive key not wrapped by the key-encryption
// key's current version, and returns how many it re-wrapped.
func (k *Keys) Rewrap(ctx context.Context) (int, error) {
	k.issue.Lock()
	defer k.issue.Unlock()
	all, err := k.store.AllArchiveKeys()
	if err != nil {
		return 0, err
	}
	n := 0
	for _, a := range all {
		if a.KEKID == k.kek.KeyID() {
			continue
		}
		plain, err := k.kek.Unwrap(ctx, a.KEKID, a.Wrapped)
		if err != nil {
			return n, fmt.Errorf("unwrap archive key %s: %w", a.KeyID, err)
		}
		wrapped, err := k.kek.Wrap(ctx, plain)
		clear(plain)
		if err != nil {
			return n, fmt.Errorf("wrap archive key %s: %w", a.KeyID, err)
		}
		a.KEKID, a.Wrapped = k.kek.KeyID(), wrapped
		if err := k.store.PutArchiveKey(a); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}
