package jobs

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"google.golang.org/protobuf/proto"

	"github.com/forlock/fleet/controlplane/internal/store"
	"github.com/forlock/fleet/internal/protocol"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// Get returns a job: the live copy of an active job, else the stored one.
func (e *Engine) Get(id string) (*forlockv1.Job, error) {
	j, _, err := e.get(id, false)
	return j, err
}

// GetWithHistory returns a job and its events.
func (e *Engine) GetWithHistory(id string) (*forlockv1.Job, []*forlockv1.JobEvent, error) {
	return e.get(id, true)
}

func (e *Engine) get(id string, history bool) (*forlockv1.Job, []*forlockv1.JobEvent, error) {
	e.mu.Lock()
	if j, ok := e.jobs[id]; ok {
		defer e.mu.Unlock()
		var evs []*forlockv1.JobEvent
		if history {
			evs = slices.Clone(j.events)
		}
		return proto.CloneOf(j.pb), evs, nil
	}
	e.mu.Unlock()
	pb, err := e.store.Job(id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if err != nil || !history {
		return pb, nil, err
	}
	evs, err := e.store.JobEvents(id)
	return pb, evs, err
}

// Filter selects jobs for List.
type Filter struct {
	NodeID         string
	Kind           protocol.Kind
	States         []forlockv1.JobState
	After, Before  int64 // Unix nanoseconds; 0 means unbounded
	Limit          int
	PageToken      string
	StripTaskNotes bool
}

// List returns jobs newest first and the token of the next page.
func (e *Engine) List(f Filter) ([]*forlockv1.Job, string, error) {
	var out []*forlockv1.Job
	next := ""
	err := e.store.ScanJobs(f.PageToken, func(pb *forlockv1.Job) bool {
		created := pb.GetCreatedAt().AsTime().UnixNano()
		if f.After != 0 && created < f.After {
			return false // IDs sort by creation time: nothing older matches
		}
		e.mu.Lock()
		if j, ok := e.jobs[pb.GetId()]; ok {
			pb = proto.CloneOf(j.pb)
		}
		e.mu.Unlock()
		if !f.matches(pb, created) {
			return true
		}
		if len(out) == f.Limit {
			next = out[len(out)-1].GetId()
			return false
		}
		if f.StripTaskNotes {
			for _, t := range pb.GetTasks() {
				t.Details, t.Progress, t.Health = nil, nil, nil
			}
		}
		out = append(out, pb)
		return true
	})
	return out, next, err
}

func (f Filter) matches(pb *forlockv1.Job, created int64) bool {
	if f.Before != 0 && created >= f.Before {
		return false
	}
	if f.Kind != "" && protocol.Kind(pb.GetKind()) != f.Kind {
		return false
	}
	if len(f.States) > 0 && !slices.Contains(f.States, pb.GetState()) {
		return false
	}
	if f.NodeID != "" && !slices.ContainsFunc(pb.GetTasks(), func(t *forlockv1.Task) bool { return t.GetNodeId() == f.NodeID }) {
		return false
	}
	return true
}

// Watch sends the job's snapshot, then its events in order (from the first
// with fromStart, else from after the snapshot), until the job has ended
// and every event is sent, or ctx ends. Each watcher reads the one shared
// history at its own pace: a slow watcher never holds up the engine or other
// watchers.
func (e *Engine) Watch(ctx context.Context, id string, fromStart bool, send func(*forlockv1.WatchJobResponse) error) error {
	e.mu.Lock()
	j, active := e.jobs[id]
	if !active {
		e.mu.Unlock()
		pb, evs, err := e.get(id, true)
		if err != nil {
			return err
		}
		if err := send(&forlockv1.WatchJobResponse{Msg: &forlockv1.WatchJobResponse_Snapshot{Snapshot: pb}}); err != nil {
			return err
		}
		if !fromStart {
			return nil
		}
		return sendEvents(evs, send)
	}
	snap := proto.CloneOf(j.pb)
	cursor := len(j.events)
	if fromStart {
		cursor = 0
	}
	e.mu.Unlock()
	if err := send(&forlockv1.WatchJobResponse{Msg: &forlockv1.WatchJobResponse_Snapshot{Snapshot: snap}}); err != nil {
		return err
	}
	for {
		e.mu.Lock()
		batch := j.events[cursor:len(j.events):len(j.events)]
		notify := j.notify
		ended := j.pb.GetState() != forlockv1.JobState_JOB_STATE_RUNNING
		e.mu.Unlock()
		if err := sendEvents(batch, send); err != nil {
			return err
		}
		cursor += len(batch)
		if ended && len(batch) == 0 {
			return nil
		}
		if ended {
			continue // send what was appended meanwhile, then stop
		}
		select {
		case <-notify:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func sendEvents(evs []*forlockv1.JobEvent, send func(*forlockv1.WatchJobResponse) error) error {
	for _, ev := range evs {
		if err := send(&forlockv1.WatchJobResponse{Msg: &forlockv1.WatchJobResponse_Event{Event: ev}}); err != nil {
			return err
		}
	}
	return nil
}

// BackupActive reports whether a backup job with a task on the node that
// has not ended is queued or running.
func (e *Engine) BackupActive(nodeID string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, j := range e.jobs {
		if j.kind() != protocol.KindBackup {
			continue
		}
		for _, t := range j.pb.GetTasks() {
			if t.GetNodeId() == nodeID && !terminal(t.GetState()) {
				return true
			}
		}
	}
	return false
}

// CheckDestination checks a backup destination as a job's is checked.
func CheckDestination(d *forlockv1.BackupDestination) error { return validDestination(d) }
