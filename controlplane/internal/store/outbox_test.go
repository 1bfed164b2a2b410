package store

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestOutboxOrderCapAndDelete(t *testing.T) {
	s, path := openTest(t)
	var es []OutboxEntry
	for i := range 5 {
		es = append(es, OutboxEntry{Receiver: "a", Data: fmt.Appendf(nil, "a%d", i)}, OutboxEntry{Receiver: "b", Data: fmt.Appendf(nil, "b%d", i)})
	}
	dropped, err := s.AppendOutbox(es, 3)
	require.NoError(t, err)
	require.Equal(t, map[string]int{"a": 2, "b": 2}, dropped, "the cap deletes the oldest two of each receiver")

	items, err := s.Outbox("a", 0, 10)
	require.NoError(t, err)
	require.Len(t, items, 3)
	for i, it := range items {
		require.Equal(t, fmt.Sprintf("a%d", i+2), string(it.Data), "oldest first")
	}
	after, err := s.Outbox("a", items[0].Seq, 10)
	require.NoError(t, err)
	require.Equal(t, items[1:], after, "after skips what was delivered")
	require.NoError(t, s.AckOutbox("a", items[0].Seq))
	require.NoError(t, s.AckOutbox("a", items[0].Seq), "acknowledging twice is no error")

	// The entries survive a reopen, and new ones go after them.
	require.NoError(t, s.Close())
	s, err = Open(path)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	_, err = s.AppendOutbox([]OutboxEntry{{Receiver: "a", Data: []byte("a5")}}, 3)
	require.NoError(t, err)
	items, err = s.Outbox("a", 0, 2)
	require.NoError(t, err)
	require.Equal(t, []string{"a3", "a4"}, []string{string(items[0].Data), string(items[1].Data)}, "limit honoured, order kept")
	n, err := s.OutboxLen("a")
	require.NoError(t, err)
	require.Equal(t, 3, n)
	n, err = s.OutboxLen("unknown")
	require.NoError(t, err)
	require.Zero(t, n)

	_, err = s.AppendOutbox([]OutboxEntry{{Receiver: "", Data: []byte("x")}}, 3)
	require.ErrorIs(t, err, errOutboxReceiver)

	rs, err := s.OutboxReceivers()
	require.NoError(t, err)
	require.Equal(t, map[string]int{"a": 3, "b": 3}, rs)
	require.NoError(t, s.DropOutbox("b"))
	require.NoError(t, s.DropOutbox("b"), "dropping twice is no error")
	rs, err = s.OutboxReceivers()
	require.NoError(t, err)
	require.Equal(t, map[string]int{"a": 3}, rs)
}

func TestOutboxRefusedOnFullDisk(t *testing.T) {
	s, _ := openTest(t)
	s.db.guard.reserve = 1 << 62 // no disk has that much free
	_, err := s.AppendOutbox([]OutboxEntry{{Receiver: "a", Data: []byte("x")}}, 0)
	require.ErrorIs(t, err, ErrDiskFull)
	s.db.guard.reserve = 0
	s.db.guard.succeeded()
	n, err := s.OutboxLen("a")
	require.NoError(t, err)
	require.Zero(t, n, "nothing stored by the refused write")
}
