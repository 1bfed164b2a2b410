package agent

import (
	"context"
	"maps"
	"time"

	"github.com/forlock/fleet/agent/internal/backup"
	"github.com/forlock/fleet/agent/internal/checks"
	"github.com/forlock/fleet/agent/internal/journal"
	"github.com/forlock/fleet/agent/internal/tasks"
	"github.com/forlock/fleet/internal/buildinfo"
	"github.com/forlock/fleet/internal/protocol"
)

// TaskHandler runs one kind of task; see Config.TaskHandlers. Run gets the
// task in a TaskAssignment and must end soon after its context ends (a
// cancel or the agent shutting down); a returned error fails the task with
// the error's text as its message.
type TaskHandler = tasks.Handler

// TaskAssignment is what a TaskHandler runs: the job and task IDs, the
// spec, and the keys or certificate of the task (never shown by fmt, slog
// or JSON).
type TaskAssignment = tasks.Assignment

// TaskHandlerFunc adapts a function to TaskHandler.
type TaskHandlerFunc = tasks.HandlerFunc

// TaskResult is what a TaskHandler reports at the end: a message and detail
// lines for people.
type TaskResult = tasks.Result

// taskStopTimeout bounds how long a shutdown waits for running tasks to
// end after cancelling them.
const taskStopTimeout = 15 * time.Second

// taskHandlers returns the built-in handlers with the config's on top. hc
// runs the health_check task and holds the Docker client.
func (a *Agent) taskHandlers(hc *health) (map[protocol.Kind]TaskHandler, error) {
	bcfg := a.backupConfig(hc)
	bh, err := backup.NewHandler(bcfg)
	if err != nil {
		return nil, err
	}
	rh, err := backup.NewRestoreHandler(bcfg)
	if err != nil {
		return nil, err
	}
	dh, err := backup.NewDeleteHandler(bcfg)
	if err != nil {
		return nil, err
	}
	vh, err := backup.NewDrillHandler(bcfg)
	if err != nil {
		return nil, err
	}
	h := map[protocol.Kind]TaskHandler{
		protocol.KindVerifyBackup: vh,
		protocol.KindHealthCheck:  checks.Handler{Suite: hc.suite, Publish: hc.monitor.Publish},
		protocol.KindBackup:       bh,
		protocol.KindRestore:      rh,
		protocol.KindDeleteBackup: dh,
		protocol.KindCertRotate:   a.certHandler(hc),
	}
	uh, err := a.newUpgradeHandler(hc, bh)
	if err != nil {
		return nil, err
	}
	if uh != nil {
		h[protocol.KindUpgrade], h[protocol.KindRollback] = uh, uh
	}
	maps.Copy(h, a.cfg.TaskHandlers)
	return h, nil
}

// openTasks opens the task journal and returns a runner on it, having
// logged the tasks a previous process left running.
func (a *Agent) openTasks(hc *health) (*journal.Journal, *tasks.Runner, error) {
	j, interrupted, err := journal.Open(a.cfg.StateDir)
	if err != nil {
		return nil, nil, err
	}
	for _, e := range interrupted {
		// A destructive kind may have left the node half changed.
		a.log.Warn("task interrupted: the agent stopped while it was running; it is not run again",
			"task_id", e.TaskID, "job_id", e.JobID, "kind", e.Kind, "destructive", e.Kind.Destructive(), "started_at", e.StartedAt)
	}
	a.removeBackupTemps(a.cfg.Backup.BackupDirs)
	handlers, err := a.taskHandlers(hc)
	if err != nil {
		_ = j.Close()
		return nil, nil, err
	}
	r, err := tasks.New(tasks.Config{
		Journal:      j,
		Handlers:     handlers,
		AgentVersion: buildinfo.Version(),
		Logger:       a.log,
	})
	if err != nil {
		_ = j.Close()
		return nil, nil, err
	}
	a.tasks.Store(r)
	return j, r, nil
}

// stopTasksFirst returns a context for the agent's loops that ends only
// after ctx has ended and the running tasks have been stopped, so their
// interrupted ends can still go out on the open control stream.
func stopTasksFirst(ctx context.Context, r *tasks.Runner) (context.Context, func()) {
	loopCtx, stopLoop := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, func() {
		sctx, cancel := context.WithTimeout(context.Background(), taskStopTimeout)
		defer cancel()
		r.Shutdown(sctx)
		stopLoop()
	})
	return loopCtx, func() {
		stop()
		stopLoop()
	}
}
