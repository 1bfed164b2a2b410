package journal

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"
)

func openTest(t *testing.T, dir string, now time.Time) (*Journal, []Entry) {
	t.Helper()
	j, interrupted, err := open(dir, func() time.Time { return now })
	require.NoError(t, err)
	t.Cleanup(func() { _ = j.Close() })
	return j, interrupted
}

func TestBeginIsExactlyOnceAcrossReopen(t *testing.T) {
	dir := t.TempDir()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	j, _ := openTest(t, dir, now)

	e, err := j.Begin("t1", "j1", "health_check")
	require.NoError(t, err)
	require.Equal(t, Entry{TaskID: "t1", JobID: "j1", Kind: "health_check", State: Running, StartedAt: now}, e)
	_, err = j.Begin("t1", "j1", "health_check")
	require.ErrorIs(t, err, ErrExists)
	require.EqualError(t, err, "task t1: task is already in the journal")

	_, err = j.Finish("t1", Succeeded, "all good", Outcome{Details: []string{"disk OK"}})
	require.NoError(t, err)
	_, err = j.Begin("t1", "j1", "health_check")
	require.ErrorIs(t, err, ErrExists, "an ended task is never begun again")
	require.NoError(t, j.Close())

	fi, err := os.Stat(filepath.Join(dir, FileName))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())

	j2, interrupted := openTest(t, dir, now.Add(time.Hour))
	require.Empty(t, interrupted)
	_, err = j2.Begin("t1", "j1", "health_check")
	require.ErrorIs(t, err, ErrExists, "the guarantee holds across a restart")
	got, err := j2.Get("t1")
	require.NoError(t, err)
	require.Equal(t, Succeeded, got.State)
	require.Equal(t, []string{"disk OK"}, got.Details)
}

func TestOpenMarksRunningTasksInterrupted(t *testing.T) {
	dir := t.TempDir()
	start := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	j, _ := openTest(t, dir, start)
	_, err := j.Begin("running", "j1", "backup")
	require.NoError(t, err)
	_, err = j.Begin("done", "j1", "backup")
	require.NoError(t, err)
	_, err = j.Finish("done", Failed, "boom", Outcome{})
	require.NoError(t, err)
	require.NoError(t, j.Ack("done"))
	require.NoError(t, j.Close()) // as if the process died here

	later := start.Add(time.Minute)
	j2, interrupted := openTest(t, dir, later)
	want := Entry{TaskID: "running", JobID: "j1", Kind: "backup", State: Interrupted, Message: InterruptedMessage,
		StartedAt: start, FinishedAt: later}
	require.Equal(t, []Entry{want}, interrupted)
	got, err := j2.Get("running")
	require.NoError(t, err)
	require.Equal(t, want, got)
	unacked, err := j2.Unacked()
	require.NoError(t, err)
	require.Equal(t, []Entry{want}, unacked, "the interrupted task is reported until acknowledged")

	_, err = j2.Begin("running", "j1", "backup")
	require.ErrorIs(t, err, ErrExists, "an interrupted task is never re-run")
	_, err = j2.Finish("running", Succeeded, "", Outcome{})
	require.ErrorIs(t, err, ErrNotRunning)
}

func TestUnackedAndAck(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	clock := now
	j, _, err := open(t.TempDir(), func() time.Time { return clock })
	require.NoError(t, err)
	defer func() { _ = j.Close() }()

	for _, id := range []string{"b", "a", "c"} {
		_, err := j.Begin(id, "j", "k")
		require.NoError(t, err)
	}
	clock = now.Add(time.Second)
	_, err = j.Finish("b", Succeeded, "", Outcome{})
	require.NoError(t, err)
	clock = now.Add(2 * time.Second)
	_, err = j.Finish("a", Cancelled, "cancelled", Outcome{})
	require.NoError(t, err)
	_, err = j.CancelUnknown("never-seen", "cancelled before it arrived")
	require.NoError(t, err)

	unacked, err := j.Unacked()
	require.NoError(t, err)
	ids := make([]string, len(unacked))
	for i, e := range unacked {
		ids[i] = e.TaskID
	}
	require.Equal(t, []string{"b", "a", "never-seen"}, ids, "ended tasks only, oldest end first; c still runs")

	require.NoError(t, j.Ack("a"))
	require.NoError(t, j.Ack("a"), "a repeated ack is harmless")
	require.ErrorIs(t, j.Ack("c"), ErrNotTerminal)
	require.ErrorIs(t, j.Ack("zzz"), ErrNotFound)
	unacked, err = j.Unacked()
	require.NoError(t, err)
	require.Len(t, unacked, 2)

	_, err = j.CancelUnknown("b", "x")
	require.ErrorIs(t, err, ErrExists)
	e, err := j.Get("never-seen")
	require.NoError(t, err)
	require.Equal(t, Cancelled, e.State)
	_, err = j.Begin("never-seen", "j", "k")
	require.ErrorIs(t, err, ErrExists, "a task cancelled before it arrived never runs")

	_, err = j.Finish("c", Running, "", Outcome{})
	require.ErrorContains(t, err, "not an end state")
	_, err = j.Begin("", "j", "k")
	require.ErrorContains(t, err, "empty task ID")
}

func TestOpenPrunesOldAckedEntries(t *testing.T) {
	dir := t.TempDir()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	clock := now
	j, _, err := open(dir, func() time.Time { return clock })
	require.NoError(t, err)
	for _, id := range []string{"old-acked", "old-unacked", "new-acked"} {
		if id == "new-acked" {
			clock = now.Add(time.Hour)
		}
		_, err := j.Begin(id, "j", "k")
		require.NoError(t, err)
		_, err = j.Finish(id, Succeeded, "", Outcome{})
		require.NoError(t, err)
	}
	require.NoError(t, j.Ack("old-acked"))
	require.NoError(t, j.Ack("new-acked"))
	require.NoError(t, j.Close())

	j2, _ := openTest(t, dir, now.Add(PruneAfter+time.Minute))
	_, err = j2.Get("old-acked")
	require.ErrorIs(t, err, ErrNotFound, "acknowledged and older than a week: pruned")
	_, err = j2.Get("old-unacked")
	require.NoError(t, err, "never pruned before the control plane has it")
	_, err = j2.Get("new-acked")
	require.NoError(t, err, "younger than a week")
}

func TestOpenRefusesForeignFiles(t *testing.T) {
	dir := t.TempDir()
	db, err := bolt.Open(filepath.Join(dir, FileName), 0o600, nil)
	require.NoError(t, err)
	require.NoError(t, db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucket([]byte("other"))
		return err
	}))
	require.NoError(t, db.Close())
	_, _, err = Open(dir)
	require.ErrorContains(t, err, `unknown schema: the file holds bucket "other" and no v1 bucket`)
}

func TestSecondOpenTimesOut(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the lock timeout")
	}
	dir := t.TempDir()
	openTest(t, dir, time.Now())
	_, _, err := Open(dir)
	require.ErrorContains(t, err, "is another agent using this state directory?")
}
