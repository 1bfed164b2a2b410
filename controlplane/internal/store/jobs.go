package store

import (
	"encoding/binary"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/forlock/fleet/controlplane/internal/audit"
	"google.golang.org/protobuf/proto"

	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// Job buckets (schema version 2; see the package doc for the rest). A job
// is a job record and one task record per task, so that one task
// transition rewrites one small record, not the whole job (records.go):
//
//	jobs/
//	  <job-id>            -> protobuf recordsv1.JobRecord: the job without its tasks (IDs sort by creation time)
//	job_tasks/
//	  <job-id>/           (nested bucket)
//	    <position, 4 bytes BE> -> protobuf recordsv1.TaskRecord: the job's task at that position
//	jobs_active/
//	  <job-id>            -> "" while the job has a task that has not ended
//	job_events/
//	  <job-id>/           (nested bucket)
//	    <seq, 8 bytes BE> -> protobuf forlockv1.JobEvent
//	job_keys/
//	  <idempotency-key>   -> <job-id>
//	late_tasks/
//	  <task-id>           -> <node-id> of a task the control plane closed (cancelled) while it
//	                         was dispatched or running on an unreachable node: the one case where
//	                         a result for an ended job is still taken. Deleted when it lands.
var (
	bucketJobs       = []byte("jobs")
	bucketJobTasks   = []byte("job_tasks")
	bucketJobsActive = []byte("jobs_active")
	bucketJobEvents  = []byte("job_events")
	bucketJobKeys    = []byte("job_keys")
	bucketLateTasks  = []byte("late_tasks")
)

// JobWrite is one group commit of the job engine. It holds only what
// changed: a job's record when the job's own fields changed, and the tasks
// that changed.
type JobWrite struct {
	// Jobs replace their job records. A job's Tasks, if it has any, are
	// written too, at their positions: a new job comes with all of them;
	// a job whose own fields changed comes without, its changed tasks in
	// Tasks.
	Jobs []*forlockv1.Job
	// Tasks replace single task records of stored jobs.
	Tasks []TaskWrite
	// Events are appended under their job.
	Events []JobEventRecord
	// RestorePoints are cataloged with the task results that made them.
	RestorePoints []*forlockv1.RestorePoint
	// Releases and Certificates are node facts that task results report.
	Releases     []NodeRelease
	Certificates []NodeCertificate
	// LateTasks are added to the late-result index (task ID -> node ID);
	// LateDone are removed from it.
	LateTasks map[string]string
	LateDone  []string
	// Audit records the submits this commit makes durable, in the same
	// transaction.
	Audit []audit.Record
	// WalTrims remove from the WAL catalog what succeeded delete_backup
	// tasks deleted.
	WalTrims []WalTrim
}

// TaskWrite is a task of a stored job and its position in the job's task
// list.
type TaskWrite struct {
	JobID    string
	Position int
	Task     *forlockv1.Task
}

// JobEventRecord is an event with the job it belongs to.
type JobEventRecord struct {
	JobID string
	Event *forlockv1.JobEvent
}

// SaveJobs writes a group commit in one transaction. A job's idempotency
// key and its active flag are kept in step with its record. Records are
// encoded before the transaction starts, so that it holds bbolt's writer
// lock only for the puts.
func (s *Store) SaveJobs(w JobWrite) error {
	jobs, err := encodeJobs(w.Jobs)
	if err != nil {
		return err
	}
	tasks := make([]nestedRecord, 0, len(w.Tasks))
	for _, tw := range w.Tasks {
		t, err := encodeTask(tw.JobID, tw.Position, tw.Task)
		if err != nil {
			return err
		}
		tasks = append(tasks, t)
	}
	events := make([]nestedRecord, 0, len(w.Events))
	for _, e := range w.Events {
		data, err := proto.Marshal(e.Event)
		if err != nil {
			return fmt.Errorf("encode event of job %s: %w", e.JobID, err)
		}
		events = append(events, nestedRecord{bucket: []byte(e.JobID), key: seqKey(e.Event.GetSeq()), data: data})
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		for _, j := range jobs {
			if err := j.put(tx); err != nil {
				return err
			}
		}
		if err := putNested(tx.Bucket(bucketJobTasks), tasks); err != nil {
			return err
		}
		if err := putRestorePoints(tx, w.RestorePoints); err != nil {
			return err
		}
		if err := putFacts(tx, w.Releases, w.Certificates); err != nil {
			return err
		}
		if err := putLate(tx.Bucket(bucketLateTasks), w.LateTasks, w.LateDone); err != nil {
			return err
		}
		if err := putWalTrims(tx, w.WalTrims); err != nil {
			return err
		}
		if err := putNested(tx.Bucket(bucketJobEvents), events); err != nil {
			return err
		}
		return s.appendAudit(tx, w.Audit)
	})
}

// nestedRecord is a record under a job's nested bucket (a task or an
// event), encoded outside the transaction.
type nestedRecord struct{ bucket, key, data []byte }

// putNested writes records under their nested buckets of root, creating a
// bucket with its first record. Records of one bucket come one after the
// other.
func putNested(root *bolt.Bucket, recs []nestedRecord) error {
	var last []byte
	var b *bolt.Bucket
	for _, r := range recs {
		if b == nil || string(last) != string(r.bucket) {
			var err error
			if b, err = root.CreateBucketIfNotExists(r.bucket); err != nil {
				return fmt.Errorf("bucket %s: %w", r.bucket, err)
			}
			last = r.bucket
		}
		if err := b.Put(r.key, r.data); err != nil {
			return err
		}
	}
	return nil
}

func putLate(b *bolt.Bucket, add map[string]string, done []string) error {
	for task, node := range add {
		if err := b.Put([]byte(task), []byte(node)); err != nil {
			return err
		}
	}
	for _, task := range done {
		if err := b.Delete([]byte(task)); err != nil {
			return err
		}
	}
	return nil
}

// LateTasks returns the late-result index: task ID -> node ID.
func (s *Store) LateTasks() (map[string]string, error) {
	out := map[string]string{}
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketLateTasks).ForEach(func(k, v []byte) error {
			out[string(k)] = string(v)
			return nil
		})
	})
	return out, err
}

func seqKey(seq uint64) []byte {
	k := make([]byte, 8)
	binary.BigEndian.PutUint64(k, seq)
	return k
}

// Job returns a stored job with its tasks.
func (s *Store) Job(id string) (*forlockv1.Job, error) {
	var j *forlockv1.Job
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		j, err = readJob(tx, []byte(id), tx.Bucket(bucketJobs).Get([]byte(id)))
		return err
	})
	return j, err
}

// JobIDByKey returns the job submitted with an idempotency key.
func (s *Store) JobIDByKey(key string) (string, bool, error) {
	var id string
	err := s.db.View(func(tx *bolt.Tx) error {
		id = string(tx.Bucket(bucketJobKeys).Get([]byte(key)))
		return nil
	})
	return id, id != "", err
}

// JobEvents returns a job's events, oldest first.
func (s *Store) JobEvents(id string) ([]*forlockv1.JobEvent, error) {
	var out []*forlockv1.JobEvent
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketJobEvents).Bucket([]byte(id))
		if b == nil {
			return nil
		}
		return b.ForEach(func(_, v []byte) error {
			e := &forlockv1.JobEvent{}
			if err := proto.Unmarshal(v, e); err != nil {
				return fmt.Errorf("decode event of job %s: %w", id, err)
			}
			out = append(out, e)
			return nil
		})
	})
	return out, err
}

// ActiveJobs returns every job that has not ended, with its tasks.
func (s *Store) ActiveJobs() ([]*forlockv1.Job, error) {
	var out []*forlockv1.Job
	err := s.db.View(func(tx *bolt.Tx) error {
		jobs := tx.Bucket(bucketJobs)
		return tx.Bucket(bucketJobsActive).ForEach(func(k, _ []byte) error {
			j, err := readJob(tx, k, jobs.Get(k))
			if err != nil {
				return fmt.Errorf("active job %s: %w", k, err)
			}
			out = append(out, j)
			return nil
		})
	})
	return out, err
}

// ScanJobs calls fn for stored jobs, with their tasks, from newest to
// oldest, starting below the job ID before (all jobs if empty), until fn
// returns false.
func (s *Store) ScanJobs(before string, fn func(*forlockv1.Job) bool) error {
	return s.scanBackward(bucketJobs, before, func(tx *bolt.Tx, k, v []byte) (bool, error) {
		j, err := readJob(tx, k, v)
		if err != nil {
			return false, err
		}
		return fn(j), nil
	})
}

// scanBackward walks a bucket whose keys sort by time from the newest key
// below before (the last key if empty) to the oldest, until fn says stop.
func (s *Store) scanBackward(bucket []byte, before string, fn func(tx *bolt.Tx, k, v []byte) (bool, error)) error {
	return s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucket).Cursor()
		var k, v []byte
		if before == "" {
			k, v = c.Last()
		} else {
			c.Seek([]byte(before))
			k, v = c.Prev()
		}
		for ; k != nil; k, v = c.Prev() {
			more, err := fn(tx, k, v)
			if err != nil || !more {
				return err
			}
		}
		return nil
	})
}
