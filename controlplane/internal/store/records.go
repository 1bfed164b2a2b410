package store

import (
	"encoding/binary"
	"fmt"
	"math"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	recordsv1 "github.com/forlock/fleet/controlplane/internal/store/proto/forlock/records/v1"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// A job is stored as a job record (jobs/<job-id>) and its tasks as task
// records (job_tasks/<job-id>/<position>), in protobuf messages of the
// store's own (proto/forlock/records/v1), not the API's Job: the API can
// grow fields the store never keeps, and the store can change its layout
// behind an unchanged API. Reads assemble the API's Job from the records.

// encodedJob is a job's record and tasks, encoded outside the transaction.
type encodedJob struct {
	id, record []byte
	running    bool
	key        string
	tasks      []nestedRecord
}

func encodeJobs(jobs []*forlockv1.Job) ([]encodedJob, error) {
	out := make([]encodedJob, 0, len(jobs))
	for _, j := range jobs {
		e, err := encodeJob(j)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

func encodeJob(j *forlockv1.Job) (encodedJob, error) {
	rec, err := proto.Marshal(jobRecord(j))
	if err != nil {
		return encodedJob{}, fmt.Errorf("encode job %s: %w", j.GetId(), err)
	}
	e := encodedJob{id: []byte(j.GetId()), record: rec, running: j.GetState() == forlockv1.JobState_JOB_STATE_RUNNING, key: j.GetIdempotencyKey()}
	for i, t := range j.GetTasks() {
		et, err := encodeTask(j.GetId(), i, t)
		if err != nil {
			return encodedJob{}, err
		}
		e.tasks = append(e.tasks, et)
	}
	return e, nil
}

func encodeTask(jobID string, pos int, t *forlockv1.Task) (nestedRecord, error) {
	if pos < 0 || pos > math.MaxUint32 {
		return nestedRecord{}, fmt.Errorf("task %s: position %d out of range", t.GetId(), pos)
	}
	data, err := proto.Marshal(taskRecord(t))
	if err != nil {
		return nestedRecord{}, fmt.Errorf("encode task %s: %w", t.GetId(), err)
	}
	k := make([]byte, 4)
	binary.BigEndian.PutUint32(k, uint32(pos))
	return nestedRecord{bucket: []byte(jobID), key: k, data: data}, nil
}

// put writes the job's record, its tasks if it came with them, and its
// active flag and idempotency key.
func (e encodedJob) put(tx *bolt.Tx) error {
	if err := tx.Bucket(bucketJobs).Put(e.id, e.record); err != nil {
		return err
	}
	active := tx.Bucket(bucketJobsActive)
	var err error
	if e.running {
		err = active.Put(e.id, nil)
	} else {
		err = active.Delete(e.id)
	}
	if err != nil {
		return err
	}
	if e.key != "" {
		if err := tx.Bucket(bucketJobKeys).Put([]byte(e.key), e.id); err != nil {
			return err
		}
	}
	return putNested(tx.Bucket(bucketJobTasks), e.tasks)
}

// readJob assembles the API's Job from its record (rec, from jobs/) and
// its task records.
func readJob(tx *bolt.Tx, id, rec []byte) (*forlockv1.Job, error) {
	if rec == nil {
		return nil, ErrNotFound
	}
	r := &recordsv1.JobRecord{}
	if err := proto.Unmarshal(rec, r); err != nil {
		return nil, fmt.Errorf("decode job %s: %w", id, err)
	}
	j := jobFromRecord(r)
	b := tx.Bucket(bucketJobTasks).Bucket(id)
	if b == nil {
		return j, nil // stored without tasks
	}
	err := b.ForEach(func(_, v []byte) error {
		r := &recordsv1.TaskRecord{}
		if err := proto.Unmarshal(v, r); err != nil {
			return fmt.Errorf("decode task of job %s: %w", id, err)
		}
		j.Tasks = append(j.Tasks, taskFromRecord(r))
		return nil
	})
	return j, err
}

// jobRecord is a job's record: everything but its tasks. It shares j's
// messages (the caller's copy is not changed while it is encoded).
func jobRecord(j *forlockv1.Job) *recordsv1.JobRecord {
	return &recordsv1.JobRecord{
		Id: j.GetId(), Kind: j.GetKind(), Spec: j.GetSpec(), Target: j.GetTarget(), Rollout: j.GetRollout(),
		IdempotencyKey: j.GetIdempotencyKey(), State: j.GetState(), CreatedAt: j.GetCreatedAt(),
		FinishedAt: j.GetFinishedAt(), Deadline: j.GetDeadline(), CancelReason: j.GetCancelReason(),
		CreatedBy: j.GetCreatedBy(), Reason: j.GetReason(), Scope: j.GetScope(),
	}
}

func jobFromRecord(r *recordsv1.JobRecord) *forlockv1.Job {
	return &forlockv1.Job{
		Id: r.GetId(), Kind: r.GetKind(), Spec: r.GetSpec(), Target: r.GetTarget(), Rollout: r.GetRollout(),
		IdempotencyKey: r.GetIdempotencyKey(), State: r.GetState(), CreatedAt: r.GetCreatedAt(),
		FinishedAt: r.GetFinishedAt(), Deadline: r.GetDeadline(), CancelReason: r.GetCancelReason(),
		CreatedBy: r.GetCreatedBy(), Reason: r.GetReason(), Scope: r.GetScope(),
	}
}

func taskRecord(t *forlockv1.Task) *recordsv1.TaskRecord {
	return &recordsv1.TaskRecord{
		Id: t.GetId(), NodeId: t.GetNodeId(), NodeName: t.GetNodeName(), State: t.GetState(), Message: t.GetMessage(),
		Progress: t.GetProgress(), Canary: t.GetCanary(), UpdatedAt: t.GetUpdatedAt(), StartedAt: t.GetStartedAt(),
		FinishedAt: t.GetFinishedAt(), Details: t.GetDetails(), Health: t.GetHealth(), Artifacts: t.GetArtifacts(),
		Upgrade: t.GetUpgrade(), Certificate: t.GetCertificate(),
	}
}

func taskFromRecord(r *recordsv1.TaskRecord) *forlockv1.Task {
	return &forlockv1.Task{
		Id: r.GetId(), NodeId: r.GetNodeId(), NodeName: r.GetNodeName(), State: r.GetState(), Message: r.GetMessage(),
		Progress: r.GetProgress(), Canary: r.GetCanary(), UpdatedAt: r.GetUpdatedAt(), StartedAt: r.GetStartedAt(),
		FinishedAt: r.GetFinishedAt(), Details: r.GetDetails(), Health: r.GetHealth(), Artifacts: r.GetArtifacts(),
		Upgrade: r.GetUpgrade(), Certificate: r.GetCertificate(),
	}
}
