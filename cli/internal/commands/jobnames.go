package commands

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// jobStateList is the help text for jobs list --state.
const jobStateList = "running, succeeded, partially-failed, failed, cancelled"

var jobStateNames = map[forlockv1.JobState]string{
	forlockv1.JobState_JOB_STATE_RUNNING:          "running",
	forlockv1.JobState_JOB_STATE_SUCCEEDED:        "succeeded",
	forlockv1.JobState_JOB_STATE_PARTIALLY_FAILED: "partially-failed",
	forlockv1.JobState_JOB_STATE_FAILED:           "failed",
	forlockv1.JobState_JOB_STATE_CANCELLED:        "cancelled",
}

var taskStateNames = map[forlockv1.TaskState]string{
	forlockv1.TaskState_TASK_STATE_QUEUED:      "queued",
	forlockv1.TaskState_TASK_STATE_DISPATCHED:  "dispatched",
	forlockv1.TaskState_TASK_STATE_RUNNING:     "running",
	forlockv1.TaskState_TASK_STATE_SUCCEEDED:   "succeeded",
	forlockv1.TaskState_TASK_STATE_FAILED:      "failed",
	forlockv1.TaskState_TASK_STATE_CANCELLED:   "cancelled",
	forlockv1.TaskState_TASK_STATE_INTERRUPTED: "interrupted",
	forlockv1.TaskState_TASK_STATE_SKIPPED:     "skipped",
	forlockv1.TaskState_TASK_STATE_ROLLED_BACK: "rolled-back",
	forlockv1.TaskState_TASK_STATE_UNKNOWN:     "unknown",
}

// jobStateName is the short name of a job state, as --state accepts it.
func jobStateName(s forlockv1.JobState) string {
	if n, ok := jobStateNames[s]; ok {
		return n
	}
	return "unknown"
}

// taskStateName is the short name of a task state.
func taskStateName(s forlockv1.TaskState) string {
	if n, ok := taskStateNames[s]; ok {
		return n
	}
	return "unknown"
}

// parseJobStates turns --state values (each may hold a comma-separated
// list) into job states, without duplicates. "partially_failed" is accepted
// for "partially-failed".
func parseJobStates(vals []string) ([]forlockv1.JobState, error) {
	var out []forlockv1.JobState
	for _, v := range vals {
		for name := range strings.SplitSeq(v, ",") {
			n := strings.ReplaceAll(strings.ToLower(strings.TrimSpace(name)), "_", "-")
			st := forlockv1.JobState_JOB_STATE_UNSPECIFIED
			for s, sn := range jobStateNames {
				if sn == n {
					st = s
				}
			}
			if st == forlockv1.JobState_JOB_STATE_UNSPECIFIED {
				return nil, usageErrorf("--state %q: unknown job state %q: use one or more of %s", v, name, jobStateList)
			}
			if !slices.Contains(out, st) {
				out = append(out, st)
			}
		}
	}
	return out, nil
}

// jobEnded reports whether a job state is final.
func jobEnded(s forlockv1.JobState) bool {
	return s != forlockv1.JobState_JOB_STATE_RUNNING && s != forlockv1.JobState_JOB_STATE_UNSPECIFIED
}

// Exit codes of commands that run or watch a job.
const (
	// ExitJobPartial: some tasks succeeded, some did not. No other outcome
	// uses it: usage errors exit with ExitUsage.
	ExitJobPartial = 2
	// ExitInterrupted: the watch was stopped with Ctrl-C; the job goes on.
	ExitInterrupted = 130
)

// jobExitCode maps a job's final state to the process exit code: 0 when
// every task succeeded, 2 when some failed, 1 when none succeeded, when the
// job was cancelled, or when it has not ended.
func jobExitCode(s forlockv1.JobState) int {
	switch s {
	case forlockv1.JobState_JOB_STATE_SUCCEEDED:
		return ExitOK
	case forlockv1.JobState_JOB_STATE_PARTIALLY_FAILED:
		return ExitJobPartial
	default:
		return ExitFailure
	}
}

// jobResult turns a finished job into the command's result: nil when every
// task succeeded, otherwise an exitError with the code and a one-line
// reason for stderr.
func jobResult(j *forlockv1.Job) error {
	code := jobExitCode(j.GetState())
	if code == ExitOK {
		return nil
	}
	c := countTasks(j.GetTasks())
	var msg string
	switch j.GetState() {
	case forlockv1.JobState_JOB_STATE_PARTIALLY_FAILED:
		msg = fmt.Sprintf("job %s partially failed: %d of %d tasks succeeded", j.GetId(), c.ok, c.total)
	case forlockv1.JobState_JOB_STATE_FAILED:
		msg = fmt.Sprintf("job %s failed: none of its %d tasks succeeded", j.GetId(), c.total)
	case forlockv1.JobState_JOB_STATE_CANCELLED:
		msg = fmt.Sprintf("job %s was cancelled", j.GetId())
		if r := j.GetCancelReason(); r != "" {
			msg += ": " + r
		}
	default:
		msg = fmt.Sprintf("job %s has not ended (state %s)", j.GetId(), jobStateName(j.GetState()))
	}
	return &exitError{code: code, err: fmt.Errorf("%s", msg)}
}

// taskCounts sums a job's tasks for the TASKS column: ok counts succeeded
// tasks, failed counts failed, interrupted and rolled-back ones, skipped counts skipped
// and cancelled ones.
type taskCounts struct{ ok, failed, skipped, total int }

func countTasks(tasks []*forlockv1.Task) taskCounts {
	c := taskCounts{total: len(tasks)}
	for _, t := range tasks {
		switch t.GetState() {
		case forlockv1.TaskState_TASK_STATE_SUCCEEDED:
			c.ok++
		case forlockv1.TaskState_TASK_STATE_FAILED, forlockv1.TaskState_TASK_STATE_INTERRUPTED, forlockv1.TaskState_TASK_STATE_ROLLED_BACK,
			forlockv1.TaskState_TASK_STATE_UNKNOWN:
			c.failed++
		case forlockv1.TaskState_TASK_STATE_SKIPPED, forlockv1.TaskState_TASK_STATE_CANCELLED:
			c.skipped++
		}
	}
	return c
}

func (c taskCounts) String() string {
	return fmt.Sprintf("%d/%d/%d/%d", c.ok, c.failed, c.skipped, c.total)
}

// parseTimeFlag reads --since / --until: a duration back from now ("90m",
// "24h") or an RFC 3339 time. Empty means unset.
func parseTimeFlag(name, v string, now time.Time) (*timestamppb.Timestamp, error) {
	if v == "" {
		return nil, nil
	}
	if d, err := time.ParseDuration(v); err == nil {
		if d <= 0 {
			return nil, usageErrorf("--%s %s: give a positive duration back from now (e.g. 24h) or an RFC 3339 time", name, v)
		}
		return timestamppb.New(now.Add(-d)), nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return nil, usageErrorf("--%s %q: give a duration back from now (e.g. 24h) or an RFC 3339 time (e.g. 2026-03-01T12:00:00Z)", name, v)
	}
	return timestamppb.New(t), nil
}
