package store

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"
)

func openTest(t *testing.T) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "fleet.db")
	s, err := Open(path)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s, path
}

func TestSchemaVersionTooNew(t *testing.T) {
	s, path := openTest(t)
	require.NoError(t, s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(keySchemaVersion, []byte("99"))
	}))
	require.NoError(t, s.Close())
	_, err := Open(path)
	require.ErrorIs(t, err, ErrSchemaTooNew)
	require.ErrorContains(t, err, "run a newer forlock-controlplane")
}

func TestEnrollIsAtomic(t *testing.T) {
	s, _ := openTest(t)
	now := time.Now()
	tok := JoinToken{ID: "aaaaaaaaaaaa", Hash: []byte("h"), CreatedAt: now, ExpiresAt: now.Add(time.Hour), MaxUses: 1}
	require.NoError(t, s.CreateToken(tok))
	p := EnrollParams{TokenID: tok.ID, TokenHash: tok.Hash, Name: "n1", KeyID: "k1", Now: now, NewID: func() string { return "id1" }}

	// A failure while issuing the certificate leaves no node and keeps the use.
	_, err := s.Enroll(context.Background(), p, func(Node) (Issued, error) { return Issued{}, errors.New("signer down") })
	require.ErrorContains(t, err, "signer down")
	nodes, err := s.Nodes()
	require.NoError(t, err)
	require.Empty(t, nodes)

	res, err := s.Enroll(context.Background(), p, func(n Node) (Issued, error) {
		require.EqualValues(t, 1, n.Epoch)
		return Issued{Serial: "01", NotAfter: now.Add(time.Hour)}, nil
	})
	require.NoError(t, err)
	require.Equal(t, "id1", res.Node.ID)
	require.Equal(t, "01", res.Node.CertSerial)
	p.Name = "n2"
	_, err = s.Enroll(context.Background(), p, func(Node) (Issued, error) { return Issued{}, nil })
	require.ErrorIs(t, err, ErrTokenUsedUp)

	// Wrong secret for a known ID is "unknown", not a hint that the ID exists.
	p.TokenHash = []byte("x")
	_, err = s.Enroll(context.Background(), p, func(Node) (Issued, error) { return Issued{}, nil })
	require.ErrorIs(t, err, ErrTokenUnknown)
}

func TestSaveStatesSkipsDeletedNodes(t *testing.T) {
	s, _ := openTest(t)
	now := time.Now()
	require.NoError(t, s.CreateToken(JoinToken{ID: "t", Hash: []byte("h"), ExpiresAt: now.Add(time.Hour), MaxUses: 2}))
	for _, name := range []string{"a", "b"} {
		_, err := s.Enroll(context.Background(), EnrollParams{TokenID: "t", TokenHash: []byte("h"), Name: name, KeyID: "k-" + name, Now: now, NewID: func() string { return "id-" + name }},
			func(Node) (Issued, error) { return Issued{}, nil })
		require.NoError(t, err)
	}
	_, err := s.DeleteNode("id-b")
	require.NoError(t, err)
	require.NoError(t, s.SaveStates([]StateChange{
		{ID: "id-a", State: StateOnline, At: now, AgentVersion: "1.2.3"},
		{ID: "id-b", State: StateOnline, At: now},
	}))
	nodes, err := s.Nodes()
	require.NoError(t, err)
	require.Len(t, nodes, 1)
	require.Equal(t, StateOnline, nodes[0].State)
	require.Equal(t, "1.2.3", nodes[0].AgentVersion)
}
