package jobs

import (
	"fmt"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/forlock/fleet/controlplane/internal/store"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// MarkUnknown ends every job of a database just restored from a snapshot
// taken at takenAt (the control plane is not running): each task that had
// not ended then (queued, dispatched or running) becomes
// TASK_STATE_UNKNOWN. After the snapshot the lost control plane may have
// dispatched it and the agent may have run it, so it is never dispatched
// again; its job ends, and the outcome stays visible in the job's history.
// Each is indexed as a late task, so a result its agent still holds in its
// journal is recorded when the node reconnects (a backup is cataloged).
// It returns how many tasks it marked.
func MarkUnknown(st *store.Store, takenAt time.Time) (int, error) {
	active, err := st.ActiveJobs()
	if err != nil {
		return 0, err
	}
	now := timestamppb.Now()
	msg := fmt.Sprintf("outcome unknown: in flight when the control-plane snapshot was taken at %s, and the control plane was restored from it; never dispatched again; if its agent still holds its result, the result replaces this when the node reconnects; otherwise check the node and submit again if needed",
		takenAt.UTC().Format(time.RFC3339))
	marked := 0
	var w store.JobWrite
	for _, pb := range active {
		evs, err := st.JobEvents(pb.GetId())
		if err != nil {
			return 0, err
		}
		seq := uint64(len(evs))
		event := func(ev *forlockv1.JobEvent) {
			seq++
			ev.Seq, ev.At = seq, now
			w.Events = append(w.Events, store.JobEventRecord{JobID: pb.GetId(), Event: ev})
		}
		for _, t := range pb.GetTasks() {
			if terminal(t.GetState()) {
				continue
			}
			t.State, t.Message, t.UpdatedAt, t.FinishedAt, t.Progress = forlockv1.TaskState_TASK_STATE_UNKNOWN, msg, now, now, nil
			marked++
			if t.GetNodeId() != "" {
				// Its agent may report a result it still holds: take it
				// as a late result (late.go).
				if w.LateTasks == nil {
					w.LateTasks = map[string]string{}
				}
				w.LateTasks[t.GetId()] = t.GetNodeId()
			}
			pb.State = deriveState(pb)
			event(&forlockv1.JobEvent{Message: msg, TaskId: t.GetId(), NodeName: t.GetNodeName(), TaskState: t.GetState(), JobState: pb.GetState()})
		}
		pb.State = deriveState(pb)
		pb.FinishedAt = now
		event(&forlockv1.JobEvent{Message: "job ended: " + stateWord(pb.GetState()), JobState: pb.GetState()})
		w.Jobs = append(w.Jobs, pb)
	}
	if len(w.Jobs) == 0 {
		return 0, nil
	}
	if err := st.SaveJobs(w); err != nil {
		return 0, fmt.Errorf("mark tasks in flight at the snapshot unknown: %w", err)
	}
	return marked, nil
}
