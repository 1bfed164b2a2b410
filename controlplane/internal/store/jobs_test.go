package store

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"

	recordsv1 "github.com/forlock/fleet/controlplane/internal/store/proto/forlock/records/v1"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// testJob is a running job of n tasks with every task field the store
// keeps set on its first task.
func testJob(id string, n int) *forlockv1.Job {
	at := timestamppb.New(time.Unix(1764000000, 0))
	j := &forlockv1.Job{
		Id: id, Kind: "backup", IdempotencyKey: "key-" + id, State: forlockv1.JobState_JOB_STATE_RUNNING,
		Spec:    &forlockv1.JobSpec{Kind: &forlockv1.JobSpec_Backup{Backup: &forlockv1.BackupSpec{Only: []forlockv1.ArtifactKind{forlockv1.ArtifactKind_ARTIFACT_KIND_REDIS}}}},
		Target:  &forlockv1.Target{All: true},
		Rollout: &forlockv1.Rollout{MaxParallel: 2}, CreatedAt: at, Deadline: at, CancelReason: "r",
	}
	for i := range n {
		j.Tasks = append(j.Tasks, &forlockv1.Task{
			Id: fmt.Sprintf("%s-%05d", id, i), NodeId: fmt.Sprintf("node-%05d", i), NodeName: fmt.Sprintf("web-%05d", i),
			State: forlockv1.TaskState_TASK_STATE_QUEUED, UpdatedAt: at,
		})
	}
	t := j.Tasks[0]
	t.State, t.Message, t.Canary, t.StartedAt, t.FinishedAt = forlockv1.TaskState_TASK_STATE_SUCCEEDED, "done", true, at, at
	t.Progress = &forlockv1.Progress{Phase: "p", BytesDone: 1}
	t.Details = []string{"a", "b"}
	t.Health = &forlockv1.HealthReport{}
	t.Artifacts = []*forlockv1.Artifact{{Id: "a1", Sha256: "00", SizeBytes: 3}}
	t.Upgrade = &forlockv1.UpgradeResult{RolledBack: true}
	t.Certificate = &forlockv1.CertificateInfo{Serial: "s"}
	return j
}

// TestRecordsKeepEveryField: the records have a field of the same name and
// type for every field of the API's Task and Job (but the Job's tasks), so
// a field added to the API fails here until the store keeps it (or says
// why not).
func TestRecordsKeepEveryField(t *testing.T) {
	same := func(api, rec protoreflect.MessageDescriptor, skip string) {
		kept := 0
		for i := range api.Fields().Len() {
			f := api.Fields().Get(i)
			if string(f.Name()) == skip {
				continue
			}
			kept++
			r := rec.Fields().ByName(f.Name())
			require.NotNil(t, r, "%s has no field %s", rec.FullName(), f.Name())
			require.Equal(t, f.Kind(), r.Kind(), "%s.%s", rec.FullName(), f.Name())
			require.Equal(t, f.Cardinality(), r.Cardinality(), "%s.%s", rec.FullName(), f.Name())
			if f.Message() != nil {
				require.Equal(t, f.Message().FullName(), r.Message().FullName(), "%s.%s", rec.FullName(), f.Name())
			}
		}
		require.Equal(t, kept, rec.Fields().Len(), "%s has fields the API does not", rec.FullName())
	}
	same((&forlockv1.Task{}).ProtoReflect().Descriptor(), (&recordsv1.TaskRecord{}).ProtoReflect().Descriptor(), "")
	same((&forlockv1.Job{}).ProtoReflect().Descriptor(), (&recordsv1.JobRecord{}).ProtoReflect().Descriptor(), "tasks")
}

// TestJobRecordsRoundTrip: a job saved whole reads back equal; then a task
// write changes that task alone, and a record write without tasks changes
// the job's own fields and keeps its tasks.
func TestJobRecordsRoundTrip(t *testing.T) {
	s, _ := openTest(t)
	j := testJob("18edc667f200f7cd16eb6a94", 3)
	require.NoError(t, s.SaveJobs(JobWrite{Jobs: []*forlockv1.Job{j}}))
	got, err := s.Job(j.GetId())
	require.NoError(t, err)
	require.Empty(t, cmpJob(j, got))

	changed := proto.CloneOf(j.GetTasks()[2])
	changed.State, changed.Message = forlockv1.TaskState_TASK_STATE_RUNNING, "running"
	require.NoError(t, s.SaveJobs(JobWrite{Tasks: []TaskWrite{{JobID: j.GetId(), Position: 2, Task: changed}}}))
	j.Tasks[2] = changed
	got, err = s.Job(j.GetId())
	require.NoError(t, err)
	require.Empty(t, cmpJob(j, got))

	own := proto.CloneOf(j)
	own.Tasks = nil
	own.State, own.FinishedAt = forlockv1.JobState_JOB_STATE_CANCELLED, timestamppb.Now()
	require.NoError(t, s.SaveJobs(JobWrite{Jobs: []*forlockv1.Job{own}}))
	j.State, j.FinishedAt = own.GetState(), own.GetFinishedAt()
	got, err = s.Job(j.GetId())
	require.NoError(t, err)
	require.Empty(t, cmpJob(j, got), "the tasks are kept")
	active, err := s.ActiveJobs()
	require.NoError(t, err)
	require.Empty(t, active, "an ended job leaves the active set")

	var scanned []*forlockv1.Job
	require.NoError(t, s.ScanJobs("", func(j *forlockv1.Job) bool { scanned = append(scanned, j); return true }))
	require.Len(t, scanned, 1)
	require.Empty(t, cmpJob(j, scanned[0]))
}

func cmpJob(want, got *forlockv1.Job) string {
	if proto.Equal(want, got) {
		return ""
	}
	return fmt.Sprintf("want %v\ngot  %v", want, got)
}

// TestMigrateV1Fixture opens a database that schema-1 code wrote
// (testdata/fleet-v1, see gen.go there): the schema becomes 2, every job
// reads back exactly as schema 1 stored it, and the catalog, nodes, events
// and indexes are intact, also after a reopen.
func TestMigrateV1Fixture(t *testing.T) {
	path := copyFixture(t)

	// What schema 1 stored, read raw before the store opens it.
	v1 := map[string]*forlockv1.Job{}
	raw, err := bolt.Open(path, 0o600, nil)
	require.NoError(t, err)
	require.NoError(t, raw.View(func(tx *bolt.Tx) error {
		require.Equal(t, "1", string(tx.Bucket(bucketMeta).Get(keySchemaVersion)))
		require.Nil(t, tx.Bucket(bucketJobTasks), "schema 1 has no task records")
		return tx.Bucket(bucketJobs).ForEach(func(k, v []byte) error {
			j := &forlockv1.Job{}
			require.NoError(t, proto.Unmarshal(v, j))
			v1[string(k)] = j
			return nil
		})
	}))
	require.NoError(t, raw.Close())
	require.Len(t, v1, 3)

	s, err := Open(path)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	require.NoError(t, s.db.View(func(tx *bolt.Tx) error {
		require.Equal(t, "2", string(tx.Bucket(bucketMeta).Get(keySchemaVersion)))
		return nil
	}))
	tasks := 0
	for id, want := range v1 {
		got, err := s.Job(id)
		require.NoError(t, err)
		require.Empty(t, cmpJob(want, got), "job %s", id)
		evs, err := s.JobEvents(id)
		require.NoError(t, err)
		require.NotEmpty(t, evs, "job %s keeps its events", id)
		tasks += len(got.GetTasks())
	}
	require.Equal(t, 7, tasks)
	active, err := s.ActiveJobs()
	require.NoError(t, err)
	require.Len(t, active, 1)
	require.Equal(t, []forlockv1.TaskState{forlockv1.TaskState_TASK_STATE_SUCCEEDED, forlockv1.TaskState_TASK_STATE_RUNNING, forlockv1.TaskState_TASK_STATE_QUEUED},
		[]forlockv1.TaskState{active[0].GetTasks()[0].GetState(), active[0].GetTasks()[1].GetState(), active[0].GetTasks()[2].GetState()})
	id, ok, err := s.JobIDByKey("fleet-backup")
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, active[0].GetId(), id)

	var rps []*forlockv1.RestorePoint
	require.NoError(t, s.ScanRestorePoints("", func(rp *forlockv1.RestorePoint) bool { rps = append(rps, rp); return true }))
	require.Len(t, rps, 2, "the catalog is intact")
	for _, rp := range rps {
		require.Len(t, rp.GetArtifacts(), 3)
		a, err := s.Artifact(rp.GetArtifacts()[0].GetId())
		require.NoError(t, err)
		require.Equal(t, rp.GetId(), a.GetRestorePointId())
	}
	nodes, err := s.Nodes()
	require.NoError(t, err)
	require.Len(t, nodes, 3)

	// Reopened: current, the records read as they did.
	require.NoError(t, s.Close())
	s, err = Open(path)
	require.NoError(t, err)
	for id, want := range v1 {
		got, err := s.Job(id)
		require.NoError(t, err)
		require.Empty(t, cmpJob(want, got), "job %s after a reopen", id)
	}
}

// copyFixture copies the schema-1 fixture into a temporary directory and
// returns the database's path there.
func copyFixture(t *testing.T) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "fleet.db")
	in, err := os.Open(filepath.Join("testdata", "fleet-v1", "fleet.db"))
	require.NoError(t, err)
	defer in.Close() //nolint:errcheck // read-only
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o600)
	require.NoError(t, err)
	_, err = io.Copy(out, in)
	require.NoError(t, err)
	require.NoError(t, out.Close())
	return dst
}

// TestMigrationIsAllOrNothing: a schema-1 job that cannot be decoded fails
// Open with a message naming it, and the file is as it was: schema 1, every
// job blob unchanged, no task records. Its twin, TestMigrateV1Fixture,
// migrates the same file whole.
func TestMigrationIsAllOrNothing(t *testing.T) {
	path := copyFixture(t)
	blobs := map[string][]byte{}
	raw, err := bolt.Open(path, 0o600, nil)
	require.NoError(t, err)
	require.NoError(t, raw.Update(func(tx *bolt.Tx) error {
		jobs := tx.Bucket(bucketJobs)
		require.NoError(t, jobs.Put([]byte("18edc667f2ffffffffffffff"), []byte{0xff, 0xff}))
		return jobs.ForEach(func(k, v []byte) error {
			blobs[string(k)] = append([]byte(nil), v...)
			return nil
		})
	}))
	require.NoError(t, raw.Close())

	_, err = Open(path)
	require.ErrorContains(t, err, "migrate schema 1 to 2: decode schema-1 job 18edc667f2ffffffffffffff")

	raw, err = bolt.Open(path, 0o600, nil)
	require.NoError(t, err)
	defer raw.Close() //nolint:errcheck // read-only
	require.NoError(t, raw.View(func(tx *bolt.Tx) error {
		require.Equal(t, "1", string(tx.Bucket(bucketMeta).Get(keySchemaVersion)))
		require.Nil(t, tx.Bucket(bucketJobTasks), "no task records")
		after := map[string][]byte{}
		require.NoError(t, tx.Bucket(bucketJobs).ForEach(func(k, v []byte) error {
			after[string(k)] = append([]byte(nil), v...)
			return nil
		}))
		require.Equal(t, blobs, after, "every job blob as it was")
		return nil
	}))
}

// TestScanJobsPages: a page starts below its token, newest first, and each
// job comes with its own tasks.
func TestScanJobsPages(t *testing.T) {
	s, _ := openTest(t)
	ids := []string{"18edc667f100000000000001", "18edc667f200000000000002", "18edc667f300000000000003"}
	var w JobWrite
	for i, id := range ids {
		w.Jobs = append(w.Jobs, testJob(id, i+1))
	}
	require.NoError(t, s.SaveJobs(w))
	page := func(before string) []string {
		var out []string
		require.NoError(t, s.ScanJobs(before, func(j *forlockv1.Job) bool {
			for _, task := range j.GetTasks() {
				require.Equal(t, j.GetId(), task.GetId()[:len(j.GetId())], "a task of its own job")
			}
			out = append(out, fmt.Sprintf("%s:%d", j.GetId(), len(j.GetTasks())))
			return len(out) < 2
		}))
		return out
	}
	require.Equal(t, []string{ids[2] + ":3", ids[1] + ":2"}, page(""), "newest first")
	require.Equal(t, []string{ids[0] + ":1"}, page(ids[1]))
}
