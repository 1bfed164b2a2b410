package store

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// benchTasks is the size of the job in BenchmarkTaskTransition.
const benchTasks = 10000

// BenchmarkTaskTransition is the commit cost of ONE task transition in a
// job of 10,000 tasks, as the engine's group commit pays it when the
// transition is alone in its commit: the task's new state and the event
// that records it, in one bbolt transaction, fsynced (fsync=on, as the
// control plane runs) or not (fsync=off: encoding and page writes alone).
//
//   - layout=v1-whole-job: schema 1 (saveWholeJobV1): copy the whole job,
//     encode it as one protobuf Job and put it.
//   - layout=v2-task-record: schema 2 (SaveJobs): copy the task, encode
//     its task record and put it.
//
// Besides Go's ns/op, B/op and allocs/op it reports written-B/op, the bytes
// the process handed to write(2) per transition (Linux /proc/self/io
// wchar: bbolt's page and meta writes), and writes/op, bbolt's write calls.
func BenchmarkTaskTransition(b *testing.B) {
	for _, sync := range []bool{true, false} {
		fsync := map[bool]string{true: "on", false: "off"}[sync]
		b.Run("layout=v1-whole-job/fsync="+fsync, func(b *testing.B) {
			db, err := bolt.Open(filepath.Join(b.TempDir(), "v1.db"), 0o600, &bolt.Options{NoSync: !sync})
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close() //nolint:errcheck // benchmark
			j := benchJob()
			if err := saveWholeJobV1(db, j, nil); err != nil {
				b.Fatal(err)
			}
			runTransitions(b, db, j, func(_ int, ev *forlockv1.JobEvent) error {
				return saveWholeJobV1(db, proto.CloneOf(j), ev)
			})
		})
		b.Run("layout=v2-task-record/fsync="+fsync, func(b *testing.B) {
			s, err := Open(filepath.Join(b.TempDir(), "v2.db"))
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close() //nolint:errcheck // benchmark
			s.db.NoSync = !sync
			j := benchJob()
			if err := s.SaveJobs(JobWrite{Jobs: []*forlockv1.Job{j}}); err != nil {
				b.Fatal(err)
			}
			runTransitions(b, s.db.DB, j, func(pos int, ev *forlockv1.JobEvent) error {
				return s.SaveJobs(JobWrite{
					Tasks:  []TaskWrite{{JobID: j.GetId(), Position: pos, Task: proto.CloneOf(j.GetTasks()[pos])}},
					Events: []JobEventRecord{{JobID: j.GetId(), Event: ev}},
				})
			})
		})
	}
}

// runTransitions times b.N transitions: each moves the next task of j from
// queued to running, as the engine's setTask does, and commits it.
func runTransitions(b *testing.B, db *bolt.DB, j *forlockv1.Job, commit func(pos int, ev *forlockv1.JobEvent) error) {
	b.Helper()
	writes0, wchar0 := boltWrites(db), wchar(b)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		pos := i % benchTasks
		t := j.GetTasks()[pos]
		now := timestamppb.Now()
		t.State, t.Message, t.UpdatedAt, t.StartedAt = forlockv1.TaskState_TASK_STATE_RUNNING, "running", now, now
		ev := &forlockv1.JobEvent{Seq: uint64(i) + 2, At: now, TaskId: t.GetId(), NodeName: t.GetNodeName(),
			TaskState: t.GetState(), Message: t.GetMessage(), JobState: j.GetState()}
		if err := commit(pos, ev); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(boltWrites(db)-writes0)/float64(b.N), "writes/op")
	if w := wchar(b); w >= 0 && wchar0 >= 0 {
		b.ReportMetric(float64(w-wchar0)/float64(b.N), "written-B/op")
	}
}

// saveWholeJobV1 is the baseline: schema 1's SaveJobs for one job and one
// event (the code as it was before schema 2, trimmed to what a task
// transition touches). The job is stored whole, every task included.
func saveWholeJobV1(db *bolt.DB, j *forlockv1.Job, ev *forlockv1.JobEvent) error {
	return db.Update(func(tx *bolt.Tx) error {
		jobs, err := tx.CreateBucketIfNotExists(bucketJobs)
		if err != nil {
			return err
		}
		active, err := tx.CreateBucketIfNotExists(bucketJobsActive)
		if err != nil {
			return err
		}
		data, err := proto.Marshal(j)
		if err != nil {
			return fmt.Errorf("encode job %s: %w", j.GetId(), err)
		}
		id := []byte(j.GetId())
		if err := jobs.Put(id, data); err != nil {
			return err
		}
		if err := active.Put(id, nil); err != nil {
			return err
		}
		if ev == nil {
			return nil
		}
		events, err := tx.CreateBucketIfNotExists(bucketJobEvents)
		if err != nil {
			return err
		}
		nested, err := events.CreateBucketIfNotExists(id)
		if err != nil {
			return err
		}
		data, err = proto.Marshal(ev)
		if err != nil {
			return err
		}
		return nested.Put(seqKey(ev.GetSeq()), data)
	})
}

// benchJob is a running backup of benchTasks nodes, every task queued as
// it was submitted, with the fields a queued task has.
func benchJob() *forlockv1.Job {
	now := timestamppb.New(time.Now())
	j := &forlockv1.Job{
		Id: "18edc667f200f7cd16eb6a94", Kind: "backup", State: forlockv1.JobState_JOB_STATE_RUNNING,
		Spec:    &forlockv1.JobSpec{Kind: &forlockv1.JobSpec_Backup{Backup: &forlockv1.BackupSpec{}}},
		Target:  &forlockv1.Target{All: true},
		Rollout: &forlockv1.Rollout{MaxParallel: 50}, CreatedAt: now, Deadline: now,
	}
	for i := range benchTasks {
		j.Tasks = append(j.Tasks, &forlockv1.Task{
			Id: fmt.Sprintf("%s-%05d", j.GetId(), i), NodeId: fmt.Sprintf("%032x", i), NodeName: fmt.Sprintf("web-%05d", i),
			State: forlockv1.TaskState_TASK_STATE_QUEUED, UpdatedAt: now,
		})
	}
	return j
}

// boltWrites returns the write calls of db's committed transactions.
func boltWrites(db *bolt.DB) int64 {
	st := db.Stats()
	return st.TxStats.GetWrite()
}

// wchar returns the bytes this process has passed to write(2) and its
// kin, or -1 where /proc/self/io cannot be read.
func wchar(b *testing.B) int64 {
	b.Helper()
	f, err := os.Open("/proc/self/io")
	if err != nil {
		return -1
	}
	defer f.Close() //nolint:errcheck // read-only
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := bytes.CutPrefix(sc.Bytes(), []byte("wchar: ")); ok {
			n, err := strconv.ParseInt(string(v), 10, 64)
			if err != nil {
				return -1
			}
			return n
		}
	}
	return -1
}
