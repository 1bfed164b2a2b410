package store

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"
)

// A wrong join token is refused by a read: it neither waits for nor takes
// bbolt's single writer. The check runs while another writer holds it.
func TestCheckJoinTokenNeedsNoWriter(t *testing.T) {
	s, _ := openTest(t)
	now := time.Now()
	tok := JoinToken{ID: "aaaaaaaaaaaa", Hash: []byte("h"), CreatedAt: now, ExpiresAt: now.Add(time.Hour), MaxUses: 1}
	require.NoError(t, s.CreateToken(tok))

	holding, release := make(chan struct{}), make(chan struct{})
	writerDone := make(chan error, 1)
	go func() {
		writerDone <- s.db.Update(func(*bolt.Tx) error {
			close(holding)
			<-release
			return nil
		})
	}()
	<-holding

	checked := make(chan [3]error, 1)
	go func() {
		checked <- [3]error{
			s.CheckJoinToken(tok.ID, []byte("wrong")),
			s.CheckJoinToken("bbbbbbbbbbbb", tok.Hash),
			s.CheckJoinToken(tok.ID, tok.Hash),
		}
	}()
	select {
	case errs := <-checked:
		require.ErrorIs(t, errs[0], ErrTokenUnknown, "wrong secret")
		require.ErrorIs(t, errs[1], ErrTokenUnknown, "unknown ID")
		require.NoError(t, errs[2], "the right secret passes")
	case <-time.After(5 * time.Second):
		t.Fatal("CheckJoinToken waited for the writer")
	}
	close(release)
	require.NoError(t, <-writerDone)

	// Usability is not its business: a used-up token still checks.
	tok.Uses = tok.MaxUses
	require.NoError(t, s.db.Update(func(tx *bolt.Tx) error { return putJSON(tx.Bucket(bucketTokens), tok.ID, tok) }))
	require.NoError(t, s.CheckJoinToken(tok.ID, tok.Hash))
}
