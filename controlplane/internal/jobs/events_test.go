package jobs

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

func TestDeriveState(t *testing.T) {
	const (
		q  = forlockv1.TaskState_TASK_STATE_QUEUED
		r  = forlockv1.TaskState_TASK_STATE_RUNNING
		ok = forlockv1.TaskState_TASK_STATE_SUCCEEDED
		f  = forlockv1.TaskState_TASK_STATE_FAILED
		c  = forlockv1.TaskState_TASK_STATE_CANCELLED
		i  = forlockv1.TaskState_TASK_STATE_INTERRUPTED
		s  = forlockv1.TaskState_TASK_STATE_SKIPPED
	)
	for name, tc := range map[string]struct {
		tasks     []forlockv1.TaskState
		cancelled bool
		want      forlockv1.JobState
	}{
		"queued":            {[]forlockv1.TaskState{ok, q}, false, forlockv1.JobState_JOB_STATE_RUNNING},
		"running":           {[]forlockv1.TaskState{r}, true, forlockv1.JobState_JOB_STATE_RUNNING},
		"all ok":            {[]forlockv1.TaskState{ok, ok}, false, forlockv1.JobState_JOB_STATE_SUCCEEDED},
		"some failed":       {[]forlockv1.TaskState{ok, f}, false, forlockv1.JobState_JOB_STATE_PARTIALLY_FAILED},
		"some skipped":      {[]forlockv1.TaskState{ok, s}, false, forlockv1.JobState_JOB_STATE_PARTIALLY_FAILED},
		"none ok":           {[]forlockv1.TaskState{f, i, s}, false, forlockv1.JobState_JOB_STATE_FAILED},
		"cancelled":         {[]forlockv1.TaskState{ok, c}, true, forlockv1.JobState_JOB_STATE_CANCELLED},
		"cancelled, all ok": {[]forlockv1.TaskState{ok}, true, forlockv1.JobState_JOB_STATE_CANCELLED},
	} {
		t.Run(name, func(t *testing.T) {
			j := &forlockv1.Job{}
			if tc.cancelled {
				j.CancelReason = "x"
			}
			for _, st := range tc.tasks {
				j.Tasks = append(j.Tasks, &forlockv1.Task{State: st})
			}
			require.Equal(t, tc.want, deriveState(j))
		})
	}
}

func TestJobIDsSortByTime(t *testing.T) {
	a := newJobID(timeAt(1))
	b := newJobID(timeAt(2))
	require.Len(t, a, 24)
	require.Less(t, a, b)
	id, idx, ok := cutLast(a+"-00007", '-')
	require.True(t, ok)
	require.Equal(t, a, id)
	require.Equal(t, "00007", idx)
}

func timeAt(sec int64) time.Time { return time.Unix(1_800_000_000+sec, 0) }
