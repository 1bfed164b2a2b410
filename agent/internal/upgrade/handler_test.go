package upgrade

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/forlock/fleet/agent/internal/tasks"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

func TestHandlerBacksUpFirstWithTheTasksKeys(t *testing.T) {
	u, err := New(Config{Docker: engine(t)})
	require.NoError(t, err)
	var got []tasks.Assignment
	backupErr := error(nil)
	backup := tasks.HandlerFunc(func(_ context.Context, a tasks.Assignment, _ func(*forlockv1.Progress)) (tasks.Result, error) {
		got = append(got, a)
		return tasks.Result{Artifacts: []*forlockv1.Artifact{{Id: "art-1"}}, Details: []string{"postgres: 1 KiB"}}, backupErr
	})
	h, err := NewHandler(HandlerConfig{Upgrader: u, History: NewHistory(filepath.Join(t.TempDir(), HistoryFile)), Backup: backup})
	require.NoError(t, err)

	dest := &forlockv1.BackupDestination{Kind: &forlockv1.BackupDestination_Dir{Dir: "/var/backups/forlock/n1"}}
	keys := []*forlockv1.TaskKey{{Name: "postgres", PlainKey: make([]byte, 32)}}
	up := &forlockv1.UpgradeSpec{To: "not a tag", BackupDestination: dest}
	a := tasks.Assignment{JobID: "job-u", TaskID: "task-u", Keys: keys,
		Spec: &forlockv1.JobSpec{Kind: &forlockv1.JobSpec_Upgrade{Upgrade: up}}}
	report := func(*forlockv1.Progress) {}

	// The target is refused after the backup, before any container is
	// touched (the engine is never contacted).
	res, err := h.Run(t.Context(), a, report)
	require.ErrorContains(t, err, "want an image tag")
	require.Len(t, got, 1, "one backup")
	require.Equal(t, "job-u", got[0].JobID)
	require.Equal(t, "task-u", got[0].TaskID)
	require.Equal(t, keys, got[0].Keys, "the backup gets the upgrade task's keys")
	require.Equal(t, "/var/backups/forlock/n1", got[0].Spec.GetBackup().GetDestination().GetDir())
	require.Len(t, res.Artifacts, 1, "the backup is reported although the upgrade failed")
	require.Equal(t, []string{"postgres: 1 KiB"}, res.Details)
	require.NotNil(t, res.Upgrade)

	up.SkipBackup = true
	_, err = h.Run(t.Context(), a, report)
	require.ErrorContains(t, err, "want an image tag")
	require.Len(t, got, 1, "skip_backup: no backup")

	up.SkipBackup, backupErr = false, errors.New("destination full")
	res, err = h.Run(t.Context(), a, report)
	require.EqualError(t, err, "pre-upgrade backup failed, nothing upgraded (skip_backup upgrades without one): destination full")
	require.Nil(t, res.Upgrade, "nothing upgraded")

	_, err = h.Run(t.Context(), tasks.Assignment{Spec: &forlockv1.JobSpec{}}, report)
	require.EqualError(t, err, "not an upgrade or rollback task")

	_, err = NewHandler(HandlerConfig{Upgrader: u})
	require.ErrorContains(t, err, "needs an Upgrader, a History and a Backup handler")
}
