// Package journal is the agent's task journal: one bbolt file,
// <state-dir>/tasks.db, that records every task the agent was asked to run,
// so that a task ID is executed at most once, across restarts too, and the
// outcome of every task survives until the control plane acknowledges it.
//
// A task is recorded as running, durably, before it starts (Begin fails if
// the ID is already there); its end is recorded before it is reported
// (Finish); the control plane's TaskAck marks it acknowledged (Ack). A task
// the agent never saw can be recorded as cancelled (CancelUnknown) so that a
// later assignment never runs it. Open marks every task a previous process
// left running as interrupted (it is never re-run) and prunes acknowledged
// entries older than PruneAfter.
//
// Bucket tree:
//
//	tasks.db
//	└── v1                     schema version 1
//	    ├── meta
//	    │   └── schema → "1"
//	    └── tasks
//	        └── <task id> → Entry, JSON
package journal

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/forlock/fleet/internal/protocol"
)

// FileName is the journal's file in the state directory.
const FileName = "tasks.db"

// PruneAfter is how long an acknowledged entry is kept after it ended.
const PruneAfter = 7 * 24 * time.Hour

// InterruptedMessage is the message of a task a previous agent process left
// running.
const InterruptedMessage = "agent stopped while the task was running; not re-run"

// State is a task's state in the journal.
type State string

// Task states.
const (
	Running     State = "running"
	Succeeded   State = "succeeded"
	Failed      State = "failed"
	Cancelled   State = "cancelled"
	Interrupted State = "interrupted"
	// RolledBack: failed, and the handler put the node back as it was.
	RolledBack State = "rolled_back"
)

// Terminal reports whether s is an end state.
func (s State) Terminal() bool {
	switch s {
	case Succeeded, Failed, Cancelled, Interrupted, RolledBack:
		return true
	}
	return false
}

// Entry is what the journal knows about one task.
type Entry struct {
	TaskID  string        `json:"task_id"`
	JobID   string        `json:"job_id,omitempty"`
	Kind    protocol.Kind `json:"kind,omitempty"`
	State   State         `json:"state"`
	Message string        `json:"message,omitempty"`
	Details []string      `json:"details,omitempty"`
	// Health is a health_check task's structured report, a serialized
	// forlock.v1.HealthReport, kept so it is reported again after a restart.
	Health []byte `json:"health,omitempty"`
	// Artifacts are a backup task's results, each a serialized
	// forlock.v1.Artifact (no secret: checksums, locations, wrapped keys),
	// kept so a result reported again still carries them.
	Artifacts [][]byte `json:"artifacts,omitempty"`
	// Upgrade is an upgrade or rollback task's serialized
	// forlock.v1.UpgradeResult; Certificate a cert_rotate task's serialized
	// forlock.v1.CertificateInfo (never a private key).
	Upgrade     []byte    `json:"upgrade,omitempty"`
	Certificate []byte    `json:"certificate,omitempty"`
	StartedAt   time.Time `json:"started_at,omitzero"`
	FinishedAt  time.Time `json:"finished_at,omitzero"`
	// Acked is set once the control plane acknowledged the terminal state.
	Acked bool `json:"acked,omitempty"`
}

// Errors of the journal's operations.
var (
	// ErrExists: Begin or CancelUnknown of a task ID already recorded.
	ErrExists = errors.New("task is already in the journal")
	// ErrNotFound: the task ID is not in the journal.
	ErrNotFound = errors.New("task is not in the journal")
	// ErrNotRunning: Finish of a task that already ended.
	ErrNotRunning = errors.New("task is not running")
	// ErrNotTerminal: Ack of a task that has not ended.
	ErrNotTerminal = errors.New("task has not ended")
)

var (
	bucketV1    = []byte("v1")
	bucketMeta  = []byte("meta")
	bucketTasks = []byte("tasks")
	keySchema   = []byte("schema")
	schemaV1    = []byte("1")
)

// Journal is an open task journal. It is safe for concurrent use.
type Journal struct {
	db  *bolt.DB
	now func() time.Time
}

// Open opens (or creates, mode 0600) the journal in dir, marks the tasks a
// previous process left running as interrupted and prunes old acknowledged
// entries. It returns the entries it marked interrupted.
func Open(dir string) (*Journal, []Entry, error) { return open(dir, time.Now) }

func open(dir string, now func() time.Time) (*Journal, []Entry, error) {
	path := filepath.Join(dir, FileName)
	// The timeout turns a second agent on the same state directory into an
	// error instead of a hang on the file lock.
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		return nil, nil, fmt.Errorf("open task journal %s: %w (is another agent using this state directory?)", path, err)
	}
	j := &Journal{db: db, now: now}
	var interrupted []Entry
	err = db.Update(func(tx *bolt.Tx) error {
		if err := initSchema(tx); err != nil {
			return err
		}
		interrupted, err = j.recover(tx)
		return err
	})
	if err != nil {
		_ = db.Close()
		return nil, nil, fmt.Errorf("open task journal %s: %w", path, err)
	}
	return j, interrupted, nil
}

func initSchema(tx *bolt.Tx) error {
	v1 := tx.Bucket(bucketV1)
	if v1 == nil {
		if k, _ := tx.Cursor().First(); k != nil {
			return fmt.Errorf("unknown schema: the file holds bucket %q and no v1 bucket", k)
		}
		var err error
		if v1, err = tx.CreateBucket(bucketV1); err != nil {
			return err
		}
		meta, err := v1.CreateBucket(bucketMeta)
		if err != nil {
			return err
		}
		if err := meta.Put(keySchema, schemaV1); err != nil {
			return err
		}
		_, err = v1.CreateBucket(bucketTasks)
		return err
	}
	if got := v1.Bucket(bucketMeta).Get(keySchema); string(got) != string(schemaV1) {
		return fmt.Errorf("unknown schema version %q: this agent reads version 1", got)
	}
	return nil
}

// recover marks running entries interrupted and prunes old acked ones.
func (j *Journal) recover(tx *bolt.Tx) ([]Entry, error) {
	b := tasksBucket(tx)
	now := j.now()
	var interrupted []Entry
	var prune [][]byte
	err := b.ForEach(func(k, v []byte) error {
		e, err := decode(k, v)
		if err != nil {
			return err
		}
		switch {
		case e.State == Running:
			e.State, e.Message, e.FinishedAt, e.Acked = Interrupted, InterruptedMessage, now, false
			interrupted = append(interrupted, e)
		case e.Acked && now.Sub(e.FinishedAt) > PruneAfter:
			prune = append(prune, slices.Clone(k))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, e := range interrupted {
		if err := put(b, e); err != nil {
			return nil, err
		}
	}
	for _, k := range prune {
		if err := b.Delete(k); err != nil {
			return nil, err
		}
	}
	return interrupted, nil
}

// Close closes the journal file.
func (j *Journal) Close() error { return j.db.Close() }

// Begin durably records the task as running, before it starts. It fails
// with ErrExists if the task ID is already recorded, in any state: that
// task must not run (again).
func (j *Journal) Begin(taskID, jobID string, kind protocol.Kind) (Entry, error) {
	e := Entry{TaskID: taskID, JobID: jobID, Kind: kind, State: Running, StartedAt: j.now()}
	return e, j.insert(e)
}

// CancelUnknown records a task the agent has not seen as cancelled, so a
// later assignment of it never runs. It fails with ErrExists if the task ID
// is already recorded.
func (j *Journal) CancelUnknown(taskID, message string) (Entry, error) {
	now := j.now()
	e := Entry{TaskID: taskID, State: Cancelled, Message: message, FinishedAt: now}
	return e, j.insert(e)
}

func (j *Journal) insert(e Entry) error {
	if e.TaskID == "" {
		return errors.New("journal: empty task ID")
	}
	return j.db.Update(func(tx *bolt.Tx) error {
		b := tasksBucket(tx)
		if b.Get([]byte(e.TaskID)) != nil {
			return fmt.Errorf("task %s: %w", e.TaskID, ErrExists)
		}
		return put(b, e)
	})
}

// Outcome is what the end of a task records besides its state and message.
type Outcome struct {
	// Details are result lines for people.
	Details []string
	// Health is the task's serialized health report, if it has one.
	Health []byte
	// Artifacts are the task's serialized artifacts, if it made any.
	Artifacts [][]byte
	// Upgrade and Certificate are serialized results of upgrade and
	// cert_rotate tasks.
	Upgrade, Certificate []byte
}

// Finish records the end of a running task, unacknowledged, and returns
// the entry. state must be terminal.
func (j *Journal) Finish(taskID string, state State, message string, o Outcome) (Entry, error) {
	if !state.Terminal() {
		return Entry{}, fmt.Errorf("journal: finish task %s as %q: not an end state", taskID, state)
	}
	var e Entry
	err := j.db.Update(func(tx *bolt.Tx) error {
		b := tasksBucket(tx)
		var err error
		if e, err = get(b, taskID); err != nil {
			return err
		}
		if e.State != Running {
			return fmt.Errorf("task %s is %s: %w", taskID, e.State, ErrNotRunning)
		}
		e.State, e.Message, e.FinishedAt, e.Acked = state, message, j.now(), false
		e.Details, e.Health, e.Artifacts = o.Details, o.Health, o.Artifacts
		e.Upgrade, e.Certificate = o.Upgrade, o.Certificate
		return put(b, e)
	})
	return e, err
}

// Ack records that the control plane has the task's terminal state. Acking
// an acknowledged task does nothing.
func (j *Journal) Ack(taskID string) error {
	return j.db.Update(func(tx *bolt.Tx) error {
		b := tasksBucket(tx)
		e, err := get(b, taskID)
		if err != nil {
			return err
		}
		if !e.State.Terminal() {
			return fmt.Errorf("task %s: %w", taskID, ErrNotTerminal)
		}
		if e.Acked {
			return nil
		}
		e.Acked = true
		return put(b, e)
	})
}

// Get returns the task's entry, or ErrNotFound.
func (j *Journal) Get(taskID string) (Entry, error) {
	var e Entry
	err := j.db.View(func(tx *bolt.Tx) error {
		var err error
		e, err = get(tasksBucket(tx), taskID)
		return err
	})
	return e, err
}

// Unacked returns the ended tasks the control plane has not acknowledged,
// oldest end first.
func (j *Journal) Unacked() ([]Entry, error) {
	var out []Entry
	err := j.db.View(func(tx *bolt.Tx) error {
		return tasksBucket(tx).ForEach(func(k, v []byte) error {
			e, err := decode(k, v)
			if err != nil {
				return err
			}
			if e.State.Terminal() && !e.Acked {
				out = append(out, e)
			}
			return nil
		})
	})
	slices.SortStableFunc(out, func(a, b Entry) int { return a.FinishedAt.Compare(b.FinishedAt) })
	return out, err
}

func tasksBucket(tx *bolt.Tx) *bolt.Bucket { return tx.Bucket(bucketV1).Bucket(bucketTasks) }

func get(b *bolt.Bucket, taskID string) (Entry, error) {
	v := b.Get([]byte(taskID))
	if v == nil {
		return Entry{}, fmt.Errorf("task %s: %w", taskID, ErrNotFound)
	}
	return decode([]byte(taskID), v)
}

func put(b *bolt.Bucket, e Entry) error {
	v, err := json.Marshal(e)
	if err != nil {
		return err
	}
	return b.Put([]byte(e.TaskID), v)
}

func decode(k, v []byte) (Entry, error) {
	var e Entry
	if err := json.Unmarshal(v, &e); err != nil {
		return Entry{}, fmt.Errorf("task %s: damaged journal entry: %w", k, err)
	}
	return e, nil
}
