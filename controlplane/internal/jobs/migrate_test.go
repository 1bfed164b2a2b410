package jobs

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/forlock/fleet/controlplane/internal/registry"
	"github.com/forlock/fleet/controlplane/internal/store"
	"github.com/forlock/fleet/internal/keys"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// TestMigratedJobFinishes: a control plane's data written by schema-1 code
// (store/testdata/fleet-v1: a backup of three nodes in flight, max_parallel
// 1, web1's task succeeded, web2's running, web3's queued) opens under
// schema 2 and the job finishes through the engine: web2 reconnects and is
// sent its running task again, reports it succeeded with its artifacts;
// only then is web3's queued task dispatched (the rollout came through the
// migration), and it runs and succeeds. The job, its tasks and the catalog
// are then read back from the store as records.
func TestMigratedJobFinishes(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join("..", "store", "testdata", "fleet-v1")
	for _, name := range []string{"fleet.db", "kek.json"} {
		data, err := os.ReadFile(filepath.Join(src, name))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), data, 0o600))
	}
	st, err := store.Open(filepath.Join(dir, "fleet.db"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	kek, err := keys.LoadFile(filepath.Join(dir, "kek.json"))
	require.NoError(t, err)
	id, ok, err := st.JobIDByKey("fleet-backup")
	require.NoError(t, err)
	require.True(t, ok)
	// The fixture's job was made with an hour's deadline on the day it was
	// generated: move it past today, or its queued task is skipped.
	old, err := st.Job(id)
	require.NoError(t, err)
	old.Tasks = nil
	old.Deadline = timestamppb.New(time.Now().Add(time.Hour))
	require.NoError(t, st.SaveJobs(store.JobWrite{Jobs: []*forlockv1.Job{old}}))

	f := startFleet(t, st, Config{Keys: kek})
	require.Len(t, f.nodes, 3)
	states := func() []forlockv1.TaskState {
		j, err := f.e.Get(id)
		require.NoError(t, err)
		var out []forlockv1.TaskState
		for _, t := range j.GetTasks() {
			out = append(out, t.GetState())
		}
		return out
	}
	require.Equal(t, []forlockv1.TaskState{succeeded, running, forlockv1.TaskState_TASK_STATE_QUEUED}, states())
	j, err := f.e.Get(id)
	require.NoError(t, err)
	require.Equal(t, uint64(1<<20), j.GetTasks()[1].GetProgress().GetBytesDone(), "progress stored by schema 1 came through")
	web2, web3 := j.GetTasks()[1].GetId(), j.GetTasks()[2].GetId()

	s3 := f.connect("web3")
	s2 := f.connect("web2")
	require.Equal(t, forlockv1.TaskState_TASK_STATE_QUEUED, states()[2], "max_parallel 1: web3 waits for web2")
	f.backedUp(s2, web2)
	require.Equal(t, []forlockv1.TaskState{succeeded, succeeded, forlockv1.TaskState_TASK_STATE_DISPATCHED}, eventually(t, states, 2, forlockv1.TaskState_TASK_STATE_DISPATCHED))
	f.e.TaskUpdate(s3, update(web3, running, "dumping"))
	f.backedUp(s3, web3)
	f.ended(id)

	got, err := st.Job(id)
	require.NoError(t, err)
	require.Equal(t, forlockv1.JobState_JOB_STATE_SUCCEEDED, got.GetState())
	for _, task := range got.GetTasks() {
		require.Equal(t, succeeded, task.GetState(), task.GetId())
		require.Len(t, task.GetArtifacts(), 3, task.GetId())
	}
	evs, err := st.JobEvents(id)
	require.NoError(t, err)
	require.Equal(t, "job ended: succeeded", evs[len(evs)-1].GetMessage())
	require.Equal(t, uint64(len(evs)), evs[len(evs)-1].GetSeq(), "event numbers go on from schema 1's")
	rps := 0
	require.NoError(t, st.ScanRestorePoints("", func(*forlockv1.RestorePoint) bool { rps++; return true }))
	require.Equal(t, 4, rps, "two restore points from schema 1, two new")
	acked := append(acks(s2), acks(s3)...)
	require.Contains(t, acked, web2)
	require.Contains(t, acked, web3)
}

// eventually waits until task i of states() is in state want and returns
// the states then.
func eventually(t *testing.T, states func() []forlockv1.TaskState, i int, want forlockv1.TaskState) []forlockv1.TaskState {
	t.Helper()
	require.Eventually(t, func() bool { return states()[i] == want }, 5*time.Second, 5*time.Millisecond)
	return states()
}

// backedUp plays the agent of s for a backup task: it takes the task's
// assignment and reports the task succeeded with one artifact per data
// key it was given.
func (f *fleet) backedUp(s *registry.Session, taskID string) {
	f.t.Helper()
	var a *forlockv1.TaskAssignment
	require.Eventually(f.t, func() bool {
		select {
		case m := <-s.Outbox():
			if m.GetTaskAssignment().GetTaskId() == taskID {
				a = m.GetTaskAssignment()
			}
		default:
		}
		return a != nil
	}, 5*time.Second, time.Millisecond, "assignment of %s", taskID)
	u := &forlockv1.TaskUpdate{TaskId: taskID, State: succeeded, Message: "backed up"}
	for _, k := range a.GetKeys() {
		sum := make([]byte, 32)
		_, _ = rand.Read(sum)
		kind := forlockv1.ArtifactKind(forlockv1.ArtifactKind_value["ARTIFACT_KIND_"+strings.ToUpper(k.GetName())])
		u.Artifacts = append(u.Artifacts, &forlockv1.Artifact{Kind: kind, SizeBytes: 4096, Sha256: hex.EncodeToString(sum),
			KeyId: k.GetKeyId(), WrappedKey: k.GetWrappedKey(), Location: "/var/backups/forlock/" + taskID + "-" + k.GetName()})
	}
	require.Len(f.t, u.GetArtifacts(), 3)
	f.e.TaskUpdate(s, u)
	f.flush()
}
