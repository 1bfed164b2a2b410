package jobs

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/forlock/fleet/controlplane/internal/store"
	"github.com/forlock/fleet/internal/keys"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// drillFleet is a fleet of web1 and web2 with a key-encryption key and one
// restore point of web1 (rp-1) in the catalog.
func drillFleet(t *testing.T) (*fleet, *keys.File) {
	t.Helper()
	f := newFleet(t, Limits{}, "web1", "web2")
	kek, err := keys.LoadOrCreateFile(filepath.Join(t.TempDir(), "kek.json"))
	require.NoError(t, err)
	f.e.kek = kek
	wrapped, err := kek.Wrap(context.Background(), make([]byte, 32))
	require.NoError(t, err)
	n := f.nodes["web1"]
	rp := &forlockv1.RestorePoint{Id: "rp-1", NodeId: n.ID, NodeName: "web1", CreatedAt: timestamppb.Now(), Artifacts: []*forlockv1.Artifact{{
		Id: "rp-1-postgres", NodeId: n.ID, RestorePointId: "rp-1", Kind: forlockv1.ArtifactKind_ARTIFACT_KIND_POSTGRES,
		State: forlockv1.ArtifactState_ARTIFACT_STATE_AVAILABLE, KeyId: kek.KeyID(), WrappedKey: wrapped, Sha256: "00",
		TableCounts: []*forlockv1.TableCount{{Table: "public.vault_items", Rows: 7}}, CountsRecorded: true,
	}}}
	require.NoError(t, f.st.SaveJobs(store.JobWrite{RestorePoints: []*forlockv1.RestorePoint{rp}}))
	return f, kek
}

func submitDrill(f *fleet, v *forlockv1.VerifyBackupSpec, nodes ...string) (*forlockv1.Job, error) {
	j, _, err := f.e.Submit(context.Background(), &forlockv1.SubmitJobRequest{
		Spec:   &forlockv1.JobSpec{Kind: &forlockv1.JobSpec_VerifyBackup{VerifyBackup: v}},
		Target: &forlockv1.Target{Nodes: nodes},
	})
	return j, err
}

func TestDrillJobRecordsResultOnRestorePoint(t *testing.T) {
	f, _ := drillFleet(t)
	for _, tc := range []struct {
		name  string
		spec  *forlockv1.VerifyBackupSpec
		nodes []string
		want  string
	}{
		{"two nodes", &forlockv1.VerifyBackupSpec{Latest: true}, []string{"web1", "web2"}, "exactly one node"},
		{"nothing named", &forlockv1.VerifyBackupSpec{}, []string{"web1"}, "give a restore point or latest"},
		{"both", &forlockv1.VerifyBackupSpec{Latest: true, RestorePointId: "rp-1"}, []string{"web1"}, "not both"},
		{"unknown", &forlockv1.VerifyBackupSpec{RestorePointId: "rp-x"}, []string{"web1"}, "not found"},
		{"another node's", &forlockv1.VerifyBackupSpec{RestorePointId: "rp-1"}, []string{"web2"}, "beside the node that made it"},
		{"no restore point", &forlockv1.VerifyBackupSpec{Latest: true}, []string{"web2"}, "back it up first"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := submitDrill(f, tc.spec, tc.nodes...)
			require.ErrorIs(t, err, ErrInvalid)
			require.ErrorContains(t, err, tc.want)
		})
	}

	s := f.connect("web1")
	drill := func(res *forlockv1.DrillResult, state forlockv1.TaskState) *forlockv1.RestorePoint {
		t.Helper()
		j, err := submitDrill(f, &forlockv1.VerifyBackupSpec{Latest: true}, "web1")
		require.NoError(t, err)
		require.Len(t, j.GetSpec().GetVerifyBackup().GetArtifacts(), 1, "the artifacts filled in at submit")
		taskID := j.GetTasks()[0].GetId()
		require.Eventually(t, func() bool {
			select {
			case m := <-s.Outbox():
				if a := m.GetTaskAssignment(); a != nil && a.GetTaskId() == taskID {
					require.Len(t, a.GetKeys(), 1, "the artifact's unwrapped key")
					require.Equal(t, "rp-1-postgres", a.GetKeys()[0].GetName())
					require.Len(t, a.GetKeys()[0].GetPlainKey(), 32)
					return true
				}
			default:
			}
			return false
		}, 5*time.Second, 5*time.Millisecond)
		f.e.TaskUpdate(s, &forlockv1.TaskUpdate{TaskId: taskID, State: forlockv1.TaskState_TASK_STATE_RUNNING})
		u := update(taskID, state, res.GetReason())
		// The agent names a restore point of its own choosing: ignored,
		// the job's spec says which restore point was drilled.
		u.Artifacts = []*forlockv1.Artifact{{Id: "rp-1-postgres", RestorePointId: "rp-other", Drill: res}}
		f.e.TaskUpdate(s, u)
		f.ended(j.GetId())
		f.flush()
		rp, err := f.st.RestorePoint("rp-1")
		require.NoError(t, err)
		require.Equal(t, j.GetId(), rp.GetLastDrill().GetJobId())
		return rp
	}

	at := timestamppb.New(time.Now().Add(-time.Minute).Truncate(time.Second))
	rp := drill(&forlockv1.DrillResult{StartedAt: at, DurationMs: 1200, Passed: true, JobId: "forged",
		Counts: []*forlockv1.DrillCount{{Name: "public.vault_items", Expected: 7, Got: 7}}}, forlockv1.TaskState_TASK_STATE_SUCCEEDED)
	require.True(t, rp.GetLastDrill().GetPassed())
	require.Equal(t, uint64(7), rp.GetLastDrill().GetCounts()[0].GetGot())
	require.Equal(t, at.AsTime(), rp.GetLastPassedDrillAt().AsTime())

	rp = drill(&forlockv1.DrillResult{StartedAt: timestamppb.Now(), Passed: false, Reason: "pg_restore exited with status 1"}, forlockv1.TaskState_TASK_STATE_FAILED)
	require.False(t, rp.GetLastDrill().GetPassed())
	require.Equal(t, "pg_restore exited with status 1", rp.GetLastDrill().GetReason())
	require.Equal(t, at.AsTime(), rp.GetLastPassedDrillAt().AsTime(), "the last pass is kept")

	// A failed task that claims a pass is not a pass.
	rp = drill(&forlockv1.DrillResult{StartedAt: timestamppb.Now(), Passed: true}, forlockv1.TaskState_TASK_STATE_FAILED)
	require.False(t, rp.GetLastDrill().GetPassed())
	require.Equal(t, at.AsTime(), rp.GetLastPassedDrillAt().AsTime())
}

// TestBackupResultDressedAsADrillIsNotCataloged: the data keys of a drill's
// report are not checked (it names cataloged artifacts and carries none), so
// an agent could dress a backup's result as a drill report to get
// artifacts with no key, or a key never checked, into the catalog. The
// backup fails, and nothing is cataloged.
func TestBackupResultDressedAsADrillIsNotCataloged(t *testing.T) {
	f, _ := drillFleet(t)
	s := f.connect("web2")
	j, _, err := f.e.Submit(context.Background(), &forlockv1.SubmitJobRequest{
		Spec:   &forlockv1.JobSpec{Kind: &forlockv1.JobSpec_Backup{Backup: &forlockv1.BackupSpec{Only: []forlockv1.ArtifactKind{forlockv1.ArtifactKind_ARTIFACT_KIND_REDIS}}}},
		Target: &forlockv1.Target{Nodes: []string{"web2"}},
	})
	require.NoError(t, err)
	taskID := j.GetTasks()[0].GetId()
	f.running(s, j.GetId(), taskID)
	u := update(taskID, forlockv1.TaskState_TASK_STATE_SUCCEEDED, "")
	u.Artifacts = []*forlockv1.Artifact{{Kind: forlockv1.ArtifactKind_ARTIFACT_KIND_REDIS, Sha256: strings.Repeat("a", 64),
		Location: "/var/backups/forlock/web2/redis.rdb.zst.enc", SizeBytes: 10, KeyId: "local:forged",
		Drill: &forlockv1.DrillResult{Passed: true}}}
	f.e.TaskUpdate(s, u)
	f.ended(j.GetId())
	f.flush()
	got, err := f.e.Get(j.GetId())
	require.NoError(t, err)
	require.Equal(t, forlockv1.TaskState_TASK_STATE_FAILED, got.GetTasks()[0].GetState())
	require.Contains(t, got.GetTasks()[0].GetMessage(), "backup not cataloged")
	var web2 int
	require.NoError(t, f.st.ScanRestorePoints("", func(rp *forlockv1.RestorePoint) bool {
		if rp.GetNodeName() == "web2" {
			web2++
		}
		return true
	}))
	require.Zero(t, web2, "nothing cataloged for web2")
}
