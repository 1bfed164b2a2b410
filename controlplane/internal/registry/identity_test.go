package registry

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/forlock/fleet/controlplane/internal/enroll"
	"github.com/forlock/fleet/controlplane/internal/store"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// TestCertGrace: after a renewal the previous certificate may still speak
// for its node within the grace, and not after; connecting with the newest
// certificate ends the grace at once. A session on a certificate that has
// expired or whose grace ended is closed by the sweep.
func TestCertGrace(t *testing.T) {
	f := newFleet(t, "web-1")
	id, first := f.id("web-1"), f.nodes["web-1"].CertSerial
	old := f.attach("web-1")
	now := time.Now()
	renewed, err := f.st.RecordCertificate(store.Renewal{ID: id.ID, Epoch: id.Epoch, From: first,
		Issued: store.Issued{Serial: "web-1-renewed", NotAfter: now.Add(time.Hour)}, Now: now, Grace: time.Minute})
	require.NoError(t, err)
	f.reg.CertificateRenewed(renewed)

	e := f.reg.nodes[id.ID]
	require.NoError(t, authorize(&e.node, id.Epoch, first, now.Add(30*time.Second)), "within the grace")
	require.ErrorIs(t, authorize(&e.node, id.Epoch, first, now.Add(2*time.Minute)), enroll.ErrSuperseded)
	require.NoError(t, authorize(&e.node, id.Epoch, "web-1-renewed", now.Add(2*time.Minute)))

	// The sweep within the grace keeps the session on the old certificate;
	// past it, closes it.
	f.reg.sweep(now.Add(30 * time.Second))
	require.False(t, closed(old))
	f.reg.sweep(now.Add(2 * time.Minute))
	require.True(t, closed(old))
	require.Contains(t, old.Reason(), "superseded")
	// Reconnecting on the old certificate within its grace works...
	_, err = f.reg.Attach(id, first, &forlockv1.AgentHello{})
	require.NoError(t, err)
	// ...and once the newest one connects, the grace is over.
	cur, err := f.reg.Attach(id, "web-1-renewed", &forlockv1.AgentHello{})
	require.NoError(t, err)
	require.ErrorIs(t, f.reg.Authorize(id, first), ErrSuperseded)
	require.ErrorContains(t, f.reg.Authorize(id, first), "its grace has ended")

	f.reg.sweep(renewed.CertNotAfter.Add(time.Second))
	require.True(t, closed(cur))
	require.Equal(t, "client certificate expired", cur.Reason())
}

// TestIdentityChanges: a re-enrollment retires the old epoch and its
// session, a quarantine refuses every certificate and closes the session,
// and a removal forgets the node.
func TestIdentityChanges(t *testing.T) {
	f := newFleet(t, "web-1", "web-2")
	s := f.attach("web-1")
	oldID := f.id("web-1")
	n := f.enroll("web-1", f.nodes["web-1"].ID)
	require.Equal(t, oldID.Epoch+1, n.Epoch)
	require.True(t, closed(s))
	require.Equal(t, "identity retired: the node enrolled again", s.Reason())
	require.ErrorIs(t, f.reg.Authorize(oldID, "web-1-1"), ErrRetired)
	require.NoError(t, f.reg.Authorize(f.id("web-1"), n.CertSerial))

	s = f.attach("web-1")
	q, err := f.st.Quarantine(n.ID, "stolen certificate", time.Now())
	require.NoError(t, err)
	f.reg.Quarantine(q)
	require.True(t, closed(s))
	require.Equal(t, "node quarantined: stolen certificate", s.Reason())
	err = f.reg.Authorize(f.id("web-1"), n.CertSerial)
	require.ErrorIs(t, err, enroll.ErrQuarantined)
	require.ErrorContains(t, err, "forlockctl tokens create --for-node web-1")
	require.True(t, f.view("web-1").GetQuarantined())

	s2 := f.attach("web-2")
	f.reg.Removed(f.nodes["web-2"].ID)
	require.True(t, closed(s2))
	require.Equal(t, "node removed from the fleet", s2.Reason())
	_, ok := f.reg.Get(f.nodes["web-2"].ID)
	require.False(t, ok)
	require.ErrorIs(t, f.reg.Authorize(f.id("web-2"), "web-2-1"), ErrUnknownNode)
	_, err = f.reg.Find("web-2")
	require.ErrorIs(t, err, store.ErrNodeNotFound)
	require.EqualError(t, err, `node "web-2" not found: see 'forlockctl nodes list'`)

	f.reg.CloseAll("shutting down")
	// web-1 is quarantined: no session to close. Nothing panics and later
	// sessions open as before.
	require.Nil(t, f.reg.Session(n.ID))
}
