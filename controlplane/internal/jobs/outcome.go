package jobs

import (
	"context"
	"log/slog"
	"time"

	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// Outcomes is told of every job that ends, with each task's node and state
// (the built-in alerting: a failed job, a node's failed backup or drill).
// It is called with the engine's lock held, so it must be quick.
type Outcomes interface {
	JobOutcome(o Outcome)
}

// Outcome is how a job ended.
type Outcome struct {
	JobID, Kind string
	State       forlockv1.JobState
	At          time.Time
	Tasks       []TaskOutcome
	// Succeeded and Failed count tasks; Failed counts what stops a job
	// (failed, interrupted, rolled back, unknown), not cancelled or
	// skipped ones.
	Succeeded, Failed int
}

// TaskOutcome is how one task of an ended job ended.
type TaskOutcome struct {
	NodeID, NodeName string
	State            forlockv1.TaskState
	// Failed is true for failed, interrupted, rolled back and unknown.
	Failed bool
}

// outcome summarises an ended job.
func outcome(pb *forlockv1.Job) Outcome {
	o := Outcome{JobID: pb.GetId(), Kind: pb.GetKind(), State: pb.GetState(), At: pb.GetFinishedAt().AsTime(),
		Tasks: make([]TaskOutcome, 0, len(pb.GetTasks()))}
	for _, t := range pb.GetTasks() {
		f := failed(t.GetState())
		o.Tasks = append(o.Tasks, TaskOutcome{NodeID: t.GetNodeId(), NodeName: t.GetNodeName(), State: t.GetState(), Failed: f})
		switch {
		case f:
			o.Failed++
		case t.GetState() == forlockv1.TaskState_TASK_STATE_SUCCEEDED:
			o.Succeeded++
		}
	}
	return o
}

// logOutcome writes the line every ended job gets: info when it succeeded
// or was cancelled, warn when tasks failed.
func logOutcome(log *slog.Logger, o Outcome) {
	if log == nil {
		return
	}
	level := slog.LevelInfo
	if o.State == forlockv1.JobState_JOB_STATE_FAILED || o.State == forlockv1.JobState_JOB_STATE_PARTIALLY_FAILED {
		level = slog.LevelWarn
	}
	log.Log(context.Background(), level, "job ended", "job", o.JobID, "kind", o.Kind, "outcome", stateWord(o.State),
		"tasks", len(o.Tasks), "succeeded", o.Succeeded, "failed", o.Failed)
}
