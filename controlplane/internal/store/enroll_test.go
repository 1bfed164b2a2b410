package store

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"

	"github.com/forlock/fleet/controlplane/internal/enroll"
)

// enrollAs enrolls name with key under token id t, issuing serial.
func enrollAs(ctx context.Context, s *Store, t, name, key, serial string, now time.Time) (Enrolled, error) {
	return s.Enroll(ctx, EnrollParams{TokenID: t, TokenHash: []byte("h-" + t), Name: name, KeyID: key, Now: now,
		NewID: func() string { return "id-" + name }},
		func(Node) (Issued, error) { return Issued{Serial: serial, NotAfter: now.Add(time.Hour)}, nil })
}

func (s *Store) token(t *testing.T, id string) JoinToken {
	t.Helper()
	var tok JoinToken
	require.NoError(t, s.db.View(func(tx *bolt.Tx) error { return getJSON(tx.Bucket(bucketTokens), id, &tok) }))
	return tok
}

func TestEnrollIdentity(t *testing.T) {
	s, _ := openTest(t)
	now := time.Now()
	ctx := context.Background()
	for _, tok := range []JoinToken{
		{ID: "t1", MaxUses: 1},
		{ID: "t2", MaxUses: 5, Labels: map[string]string{"role": "x"}},
		{ID: "f1", MaxUses: 1, ForNodeName: "web1", ForNodeID: "id-web1"},
	} {
		tok.Hash, tok.ExpiresAt = []byte("h-"+tok.ID), now.Add(time.Hour)
		require.NoError(t, s.CreateToken(tok))
	}

	first, err := enrollAs(ctx, s, "t1", "web1", "k1", "s1", now)
	require.NoError(t, err)
	require.Equal(t, enroll.RuleNew, first.Decision.Rule)
	require.EqualValues(t, 1, s.token(t, "t1").Uses)

	// The answer was lost: the same token and key get the same node, a new
	// certificate, and no use is charged although the token has none left.
	again, err := enrollAs(ctx, s, "t1", "web1", "k1", "s2", now)
	require.NoError(t, err)
	require.Equal(t, enroll.RuleRetry, again.Decision.Rule)
	require.Equal(t, first.Node.ID, again.Node.ID)
	require.Equal(t, "s2", again.Node.CertSerial)
	require.EqualValues(t, 2, again.Node.Epoch)
	require.EqualValues(t, 1, s.token(t, "t1").Uses)

	// Another token and key under the same name: refused, no use charged,
	// node untouched (labels, key, epoch).
	_, err = enrollAs(ctx, s, "t2", "web1", "k2", "s3", now)
	require.ErrorIs(t, err, enroll.ErrNameTaken)
	require.Zero(t, s.token(t, "t2").Uses)
	n := s.nodeByName(t, "web1")
	require.Empty(t, n.Labels)
	require.Equal(t, "k1", n.KeyID)
	require.EqualValues(t, 2, n.Epoch)

	// Its own key with another token (rule a): charged, labels unchanged.
	back, err := enrollAs(ctx, s, "t2", "web1", "k1", "s4", now)
	require.NoError(t, err)
	require.Equal(t, enroll.RuleSameKey, back.Decision.Rule)
	require.Empty(t, back.Node.Labels, "a later token never changes labels")
	require.EqualValues(t, 1, s.token(t, "t2").Uses)

	// A caller gone before the commit: nothing written, nothing charged.
	gone, cancel := context.WithCancel(ctx)
	cancel()
	_, err = enrollAs(gone, s, "t2", "web2", "k5", "s5", now)
	require.ErrorIs(t, err, context.Canceled)
	require.EqualValues(t, 1, s.token(t, "t2").Uses)
	_, ok := s.findName(t, "web2")
	require.False(t, ok)
	// The same enrollment with a live caller commits (the check above could fail).
	_, err = enrollAs(ctx, s, "t2", "web2", "k5", "s5", now)
	require.NoError(t, err)
	require.EqualValues(t, 2, s.token(t, "t2").Uses)
	require.Equal(t, map[string]string{"role": "x"}, s.nodeByName(t, "web2").Labels)

	// Quarantine, then the replacement host with the for-node token.
	_, err = s.Quarantine(first.Node.ID, "test", now)
	require.NoError(t, err)
	_, err = enrollAs(ctx, s, "t2", "web1", "k1", "s6", now)
	require.ErrorIs(t, err, enroll.ErrQuarantined)
	repl, err := enrollAs(ctx, s, "f1", "web1", "k9", "s7", now)
	require.NoError(t, err)
	require.Equal(t, enroll.RuleForNode, repl.Decision.Rule)
	require.Equal(t, "k1", repl.RetiredKeyID)
	require.Equal(t, first.Node.ID, repl.Node.ID)
	require.False(t, repl.Node.Quarantined())
	require.Equal(t, "k9", repl.Node.KeyID)
	// The old key is out now, even with a token it used before.
	_, err = enrollAs(ctx, s, "t1", "web1", "k1", "s8", now)
	require.ErrorIs(t, err, enroll.ErrNameTaken)

	// Uses are recorded one key per token, in their own bucket.
	require.NoError(t, s.db.View(func(tx *bolt.Tx) error {
		require.Equal(t, []byte(first.Node.ID), tx.Bucket(bucketTokenUses).Bucket([]byte("t1")).Get([]byte("k1")))
		require.Equal(t, []byte("id-web2"), tx.Bucket(bucketTokenUses).Bucket([]byte("t2")).Get([]byte("k5")))
		return nil
	}))
}

func TestRecordCertificateGrace(t *testing.T) {
	s, _ := openTest(t)
	now := time.Now()
	require.NoError(t, s.CreateToken(JoinToken{ID: "t", Hash: []byte("h-t"), ExpiresAt: now.Add(time.Hour), MaxUses: 1}))
	e, err := enrollAs(context.Background(), s, "t", "n1", "k1", "c1", now)
	require.NoError(t, err)
	renew := func(from, next string, at time.Time) (Node, error) {
		return s.RecordCertificate(Renewal{ID: e.Node.ID, Epoch: e.Node.Epoch, From: from, Now: at, Grace: time.Minute,
			Issued: Issued{Serial: next, NotAfter: at.Add(time.Hour), KeyID: "k-" + next}})
	}
	n, err := renew("c1", "c2", now)
	require.NoError(t, err)
	require.Equal(t, "c2", n.CertSerial)
	require.Equal(t, "k-c2", n.KeyID, "the registered key follows the newest certificate")
	_, err = renew("c1", "c3", now.Add(2*time.Minute))
	require.ErrorIs(t, err, enroll.ErrSuperseded, "c1 after its grace")
	_, err = s.RecordCertificate(Renewal{ID: e.Node.ID, Epoch: e.Node.Epoch + 1, From: "c2", Now: now})
	require.ErrorIs(t, err, ErrIdentityRetired)
	_, err = renew("c2", "c3", now.Add(2*time.Minute))
	require.NoError(t, err)

	q, err := s.Quarantine(e.Node.ID, "superseded certificate c1 tried to renew", now)
	require.NoError(t, err)
	require.True(t, q.Quarantined())
	_, err = renew("c3", "c4", now.Add(2*time.Minute))
	require.ErrorIs(t, err, enroll.ErrQuarantined, "a quarantined node renews nothing")
	nodes, err := s.Nodes()
	require.NoError(t, err)
	require.Equal(t, "superseded certificate c1 tried to renew", nodes[0].QuarantineReason, "quarantine is stored")
}

func (s *Store) findName(t *testing.T, name string) (Node, bool) {
	t.Helper()
	nodes, err := s.Nodes()
	require.NoError(t, err)
	for _, n := range nodes {
		if n.Name == name {
			return n, true
		}
	}
	return Node{}, false
}

func (s *Store) nodeByName(t *testing.T, name string) Node {
	t.Helper()
	n, ok := s.findName(t, name)
	require.True(t, ok, "node %s", name)
	return n
}
