package agent

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/forlock/fleet/agent/internal/backup"
	"github.com/forlock/fleet/agent/internal/certs"
	"github.com/forlock/fleet/agent/internal/checks"
	"github.com/forlock/fleet/agent/internal/journal"
	"github.com/forlock/fleet/internal/protocol"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

var noopHandler = TaskHandlerFunc(func(context.Context, TaskAssignment, func(*forlockv1.Progress)) (TaskResult, error) {
	return TaskResult{Message: "noop"}, nil
})

func TestTaskHandlersExtendAndReplaceTheBuiltIns(t *testing.T) {
	a, err := New(Config{ControlPlane: "cp:1", Name: "n", StateDir: "/x"})
	require.NoError(t, err)
	hc := a.cfg.newHealth()
	t.Cleanup(hc.close)
	builtIn, err := a.taskHandlers(hc)
	require.NoError(t, err)
	h, ok := builtIn["health_check"].(checks.Handler)
	require.True(t, ok)
	require.Same(t, hc.suite, h.Suite)
	require.Len(t, h.Suite.Host, 5, "disk, memory, cpu, disk/docker, disk/backup")
	require.Equal(t, []string{"/x"}, h.Suite.Host[0].(checks.Disk).Dirs, "the disk check watches the state directory's file system")
	require.Equal(t, []string{"/var/backups/forlock"}, h.Suite.Host[4].(checks.Disk).Dirs, "the default backup directory")
	require.IsType(t, &backup.Handler{}, builtIn["backup"])
	require.IsType(t, &backup.RestoreHandler{}, builtIn["restore"])
	require.IsType(t, &backup.DeleteHandler{}, builtIn["delete_backup"])
	ch, ok := builtIn["cert_rotate"].(certs.Handler)
	require.True(t, ok)
	require.Equal(t, "127.0.0.1:443", ch.Config.Addr)
	require.Equal(t, "nginx", ch.Config.Service)
	require.Same(t, hc.docker, ch.Config.Docker)

	a.cfg.TaskHandlers = map[protocol.Kind]TaskHandler{"health_check": noopHandler, "extra": noopHandler}
	handlers, err := a.taskHandlers(hc)
	require.NoError(t, err)
	require.Len(t, handlers, len(builtIn)+1)
	res, err := handlers["health_check"].Run(context.Background(), TaskAssignment{}, nil)
	require.NoError(t, err)
	require.Equal(t, "noop", res.Message, "a configured handler replaces the built-in one")
}

func TestRunReportsTasksInterruptedByAPreviousProcess(t *testing.T) {
	dir := t.TempDir()
	storeIdentity(t, dir, time.Now(), time.Hour)
	j, _, err := journal.Open(dir)
	require.NoError(t, err)
	_, err = j.Begin("task-1", "job-1", "health_check")
	require.NoError(t, err)
	require.NoError(t, j.Close()) // the previous process died here

	a, logs, stop := startAgent(t, Config{ControlPlane: closedAddr(t), StateDir: dir})
	logs.waitFor(t, `"msg":"task interrupted: the agent stopped while it was running; it is not run again","task_id":"task-1","job_id":"job-1","kind":"health_check"`)
	require.Equal(t, uint64(0), a.Stats().TasksStarted)
	require.NoError(t, stop())

	j, interrupted, err := journal.Open(dir)
	require.NoError(t, err)
	defer func() { _ = j.Close() }()
	require.Empty(t, interrupted, "recorded once")
	unacked, err := j.Unacked()
	require.NoError(t, err)
	require.Len(t, unacked, 1)
	require.Equal(t, journal.Interrupted, unacked[0].State)
	require.Equal(t, journal.InterruptedMessage, unacked[0].Message)
}
