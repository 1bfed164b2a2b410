package jobs

import (
	"bytes"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/require"

	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

func TestOutcomeCountsAndLogs(t *testing.T) {
	pb := &forlockv1.Job{Id: "j1", Kind: "backup", State: forlockv1.JobState_JOB_STATE_PARTIALLY_FAILED, Tasks: []*forlockv1.Task{
		{NodeId: "n1", NodeName: "web-1", State: forlockv1.TaskState_TASK_STATE_SUCCEEDED},
		{NodeId: "n2", NodeName: "web-2", State: forlockv1.TaskState_TASK_STATE_INTERRUPTED},
		{NodeId: "n3", NodeName: "web-3", State: forlockv1.TaskState_TASK_STATE_SKIPPED},
	}}
	o := outcome(pb)
	require.Equal(t, 1, o.Succeeded)
	require.Equal(t, 1, o.Failed)
	require.Equal(t, []TaskOutcome{
		{NodeID: "n1", NodeName: "web-1", State: forlockv1.TaskState_TASK_STATE_SUCCEEDED},
		{NodeID: "n2", NodeName: "web-2", State: forlockv1.TaskState_TASK_STATE_INTERRUPTED, Failed: true},
		{NodeID: "n3", NodeName: "web-3", State: forlockv1.TaskState_TASK_STATE_SKIPPED},
	}, o.Tasks)

	var buf bytes.Buffer
	logOutcome(slog.New(slog.NewTextHandler(&buf, nil)), o)
	require.Contains(t, buf.String(), `level=WARN msg="job ended" job=j1 kind=backup outcome="partially failed" tasks=3 succeeded=1 failed=1`)
	buf.Reset()
	o.State = forlockv1.JobState_JOB_STATE_SUCCEEDED
	logOutcome(slog.New(slog.NewTextHandler(&buf, nil)), o)
	require.Contains(t, buf.String(), `level=INFO msg="job ended" job=j1`)
}
