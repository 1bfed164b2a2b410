package registry

import (
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/forlock/fleet/controlplane/internal/enroll"
	"github.com/forlock/fleet/controlplane/internal/store"
	"github.com/forlock/fleet/internal/pki"
)

// MaxLostNodes bounds the list of agents refused after a restore because
// their node enrolled after the snapshot.
const MaxLostNodes = 100

// adoptSkew widens the window of adoptable certificates by the truncation
// of NotBefore to whole seconds (pki.IssuedAt).
const adoptSkew = time.Second

// Adopter makes a certificate its node's live one (store.AdoptCertificate).
type Adopter interface {
	AdoptCertificate(a store.Adoption) (store.Node, error)
}

// LostNode is an agent refused after a restore: its node ID is not in the
// restored registry.
type LostNode struct {
	ID       string
	LastSeen time.Time
}

// restored is what the registry knows of the snapshot it was restored from.
type restored struct {
	takenAt, restoredAt time.Time
	store               Adopter
	lost                []LostNode // newest first, at most MaxLostNodes
}

// Restored tells the registry that its nodes come from a snapshot taken at
// takenAt and restored at restoredAt: from now on Adopt accepts the
// certificates the lost control plane issued in between.
func (r *Registry) Restored(takenAt, restoredAt time.Time, st Adopter) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.restored = &restored{takenAt: takenAt, restoredAt: restoredAt, store: st}
}

// LostNodes returns the agents refused since the restore because their node
// enrolled after the snapshot, newest first.
func (r *Registry) LostNodes() []LostNode {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.restored == nil {
		return nil
	}
	return slices.Clone(r.restored.lost)
}

// Adopt is asked about an agent certificate that Authorize refused with
// refusal. After a restore, a certificate the lost control plane issued
// between the snapshot and the restore (a renewal, or a re-enrollment with
// a --for-node token) is accepted and becomes the node's live certificate
// when it names a recorded node at or above its recorded epoch and carries
// the node's registered public key; its older certificates stop speaking
// for it. Everything else keeps its refusal: a removed node, another key,
// a lower epoch, a quarantined node, a certificate issued before the
// snapshot or after the restore. An agent of a node that is not recorded
// and whose certificate was issued after the snapshot is listed
// (LostNodes) and told to enroll again.
func (r *Registry) Adopt(id pki.NodeID, leaf *x509.Certificate, refusal error) error {
	r.mu.RLock()
	rs := r.restored
	r.mu.RUnlock()
	if rs == nil || leaf == nil {
		return refusal
	}
	if issued := pki.IssuedAt(leaf); issued.Before(rs.takenAt.Add(-adoptSkew)) || !issued.Before(rs.restoredAt) {
		return refusal
	}
	switch {
	case errors.Is(refusal, ErrUnknownNode):
		r.lostNode(id.ID)
		return fmt.Errorf("node %s enrolled after the control-plane snapshot this control plane was restored from (taken at %s): give it a new join token and delete its state dir",
			id.ID, rs.takenAt.UTC().Format(time.RFC3339))
	case !errors.Is(refusal, ErrRetired) && !errors.Is(refusal, ErrSuperseded):
		return refusal // quarantined: stays refused
	}
	n, err := rs.store.AdoptCertificate(store.Adoption{ID: id.ID, Epoch: id.Epoch, Serial: pki.SerialHex(leaf),
		NotAfter: leaf.NotAfter, KeyID: enroll.KeyID(leaf.RawSubjectPublicKeyInfo)})
	if err != nil {
		return fmt.Errorf("%w (after the restore from a snapshot, this certificate could not be taken as the node's: %w)", refusal, err)
	}
	r.Enrolled(n)
	if r.log != nil {
		r.log.Info("certificate issued after the snapshot adopted as the node's live certificate", "node", n.Name, "node_id", n.ID, "epoch", n.Epoch, "serial", n.CertSerial)
	}
	return nil
}

func (r *Registry) lostNode(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	rs := r.restored
	rs.lost = slices.DeleteFunc(rs.lost, func(l LostNode) bool { return l.ID == id })
	rs.lost = slices.Insert(rs.lost, 0, LostNode{ID: id, LastSeen: time.Now()})
	if len(rs.lost) > MaxLostNodes {
		rs.lost = rs.lost[:MaxLostNodes]
	}
}
