package tasks

import (
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/forlock/fleet/agent/internal/journal"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// wireState maps a journal state to the API's.
func wireState(s journal.State) forlockv1.TaskState {
	switch s {
	case journal.Running:
		return forlockv1.TaskState_TASK_STATE_RUNNING
	case journal.Succeeded:
		return forlockv1.TaskState_TASK_STATE_SUCCEEDED
	case journal.Failed:
		return forlockv1.TaskState_TASK_STATE_FAILED
	case journal.Cancelled:
		return forlockv1.TaskState_TASK_STATE_CANCELLED
	case journal.Interrupted:
		return forlockv1.TaskState_TASK_STATE_INTERRUPTED
	case journal.RolledBack:
		return forlockv1.TaskState_TASK_STATE_ROLLED_BACK
	}
	return forlockv1.TaskState_TASK_STATE_UNSPECIFIED
}

// entryUpdate is the TaskUpdate that reports a journal entry's state.
func entryUpdate(e journal.Entry) *forlockv1.ConnectRequest {
	at := e.FinishedAt
	if !e.State.Terminal() {
		at = e.StartedAt
	}
	u := &forlockv1.TaskUpdate{
		TaskId:  e.TaskID,
		State:   wireState(e.State),
		Message: e.Message,
		Details: e.Details,
		At:      timestamppb.New(at),
	}
	for _, b := range e.Artifacts {
		a := &forlockv1.Artifact{}
		if proto.Unmarshal(b, a) == nil {
			u.Artifacts = append(u.Artifacts, a)
		}
	}
	if len(e.Upgrade) > 0 {
		up := &forlockv1.UpgradeResult{}
		if proto.Unmarshal(e.Upgrade, up) == nil {
			u.Upgrade = up
		}
	}
	if len(e.Certificate) > 0 {
		c := &forlockv1.CertificateInfo{}
		if proto.Unmarshal(e.Certificate, c) == nil {
			u.Certificate = c
		}
	}
	if len(e.Health) > 0 {
		h := &forlockv1.HealthReport{}
		if proto.Unmarshal(e.Health, h) == nil {
			u.Health = h
		}
	}
	return update(u)
}

func update(u *forlockv1.TaskUpdate) *forlockv1.ConnectRequest {
	return &forlockv1.ConnectRequest{Msg: &forlockv1.ConnectRequest_TaskUpdate{TaskUpdate: u}}
}
