package store

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestNodeNotFound: every write to a node that is not stored fails with
// ErrNodeNotFound (which is also ErrNotFound) naming the node, and writes
// nothing; a batch of state changes drops it instead.
func TestNodeNotFound(t *testing.T) {
	s, _ := openTest(t)
	now := time.Now()
	for name, call := range map[string]func() error{
		"delete":     func() error { _, err := s.DeleteNode("id-gone"); return err },
		"quarantine": func() error { _, err := s.Quarantine("id-gone", "why", now); return err },
		"renew": func() error {
			_, err := s.RecordCertificate(Renewal{ID: "id-gone", Epoch: 1, From: "a", Issued: Issued{Serial: "b"}, Now: now})
			return err
		},
	} {
		err := call()
		require.ErrorIs(t, err, ErrNodeNotFound, name)
		require.ErrorIs(t, err, ErrNotFound, name)
		require.EqualError(t, err, `node "id-gone" not found: see 'forlockctl nodes list'`, name)
	}
	require.NoError(t, s.SaveStates([]StateChange{{ID: "id-gone", State: StateOnline, At: now}}))
	nodes, err := s.Nodes()
	require.NoError(t, err)
	require.Empty(t, nodes)
	// The generic sentinel is not a node's.
	require.NotErrorIs(t, ErrNotFound, ErrNodeNotFound)
}
