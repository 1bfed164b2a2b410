package controlplane

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/forlock/fleet/controlplane/internal/jobs"
	"github.com/forlock/fleet/controlplane/internal/store"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// The operations guide's backup schedule, as a config file says it.
const guideSchedules = `version: 1
backup_schedules:
  - name: postgres-daily
    cron: "0 2 * * *"
    only: [postgres]
    keep: 720h
  - name: redis-15min
    cron: "*/15 * * * *"
    only: [redis]
    keep: 24h
  - name: config-daily
    cron: "@daily"
    only: [config]
    s3_bucket: fleet-backups
    s3_prefix: config/
    selector: env=prod
    max_parallel: 2
`

func TestBackupScheduleConfig(t *testing.T) {
	fc, err := ParseConfigFile([]byte(guideSchedules))
	require.NoError(t, err)
	scheds, err := fc.backupSchedules()
	require.NoError(t, err)
	require.Len(t, scheds, 3)
	pg := scheds[0]
	require.Equal(t, []forlockv1.ArtifactKind{forlockv1.ArtifactKind_ARTIFACT_KIND_POSTGRES}, pg.Only)
	require.Equal(t, 720*time.Hour, pg.Keep)
	require.Equal(t, forlockv1.PostgresFormat_POSTGRES_FORMAT_LOGICAL, pg.PostgresFormat)
	at := time.Date(2026, 11, 26, 1, 30, 0, 0, time.UTC)
	require.Equal(t, time.Date(2026, 11, 26, 2, 0, 0, 0, time.UTC), pg.next(at), "02:00 UTC")
	require.Equal(t, time.Date(2026, 11, 26, 2, 0, 0, 0, time.UTC), pg.next(at.In(time.FixedZone("X", 5*3600))), "UTC whatever the zone of now")
	require.Equal(t, time.Date(2026, 11, 26, 1, 45, 0, 0, time.UTC), scheds[1].next(at))
	req := scheds[2].request(time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC))
	require.Equal(t, "backup-schedule/config-daily/2026-11-27T00:00:00Z", req.GetIdempotencyKey())
	require.Equal(t, "env=prod", req.GetTarget().GetLabelSelector())
	require.Equal(t, uint32(2), req.GetRollout().GetMaxParallel())
	require.Equal(t, forlockv1.OfflinePolicy_OFFLINE_POLICY_SKIP, req.GetRollout().GetOfflinePolicy())
	require.Equal(t, "fleet-backups", req.GetSpec().GetBackup().GetDestination().GetS3().GetBucket())
	require.True(t, scheds[0].request(at).GetTarget().GetAll(), "no selector: every node")

	for _, tt := range []struct{ name, entry, want string }{
		{"bad name", `{name: "Daily!", cron: "@daily"}`, `a name is 1-40 lower-case letters`},
		{"bad cron", `{name: d, cron: "every day"}`, `cron "every day": give five fields in UTC`},
		{"six fields", `{name: d, cron: "0 0 2 * * *"}`, `give five fields`},
		{"time zone", `{name: d, cron: "CRON_TZ=Europe/Paris 0 2 * * *"}`, `give five fields in UTC`},
		{"bad kind", `{name: d, cron: "@daily", only: [wal]}`, `only "wal": use postgres, redis or config`},
		{"bad format", `{name: d, cron: "@daily", pg_format: wal}`, `pg_format "wal": use logical or physical`},
		{"dest and s3", `{name: d, cron: "@daily", dest: /b, s3_bucket: x}`, `give dest or s3_bucket, not both`},
		{"relative dest", `{name: d, cron: "@daily", dest: backups}`, `destination "backups": give an absolute, clean directory path`},
		{"bad bucket", `{name: d, cron: "@daily", s3_bucket: "Fleet_Backups"}`, `bucket "Fleet_Backups": use 3-63 lower-case letters`},
		{"short keep", `{name: d, cron: "@daily", keep: 10m}`, `keep 10m0s: give at least 1h`},
		{"bad keep", `{name: d, cron: "@daily", keep: 30d}`, `keep "30d": want a duration such as 720h`},
		{"bad selector", `{name: d, cron: "@daily", selector: "=x"}`, `selector`},
		{"unknown field", `{name: d, cron: "@daily", retention: 3}`, `field retention not found`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseConfigFile([]byte("version: 1\nbackup_schedules:\n  - " + tt.entry + "\n"))
			require.ErrorContains(t, err, tt.want)
		})
	}
	dup := Config{DataDir: t.TempDir(), Listen: "127.0.0.1:0", BackupSchedules: []BackupSchedule{{Name: "d", Cron: "@daily"}, {Name: "d", Cron: "@hourly"}}}
	dup.setDefaults()
	require.ErrorContains(t, dup.validate(), "backup schedule d: named twice")
}

func TestExpired(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	rp := func(id, node string, age time.Duration, state forlockv1.ArtifactState) *forlockv1.RestorePoint {
		return &forlockv1.RestorePoint{Id: id, NodeId: node, JobId: id, CreatedAt: timestamppb.New(now.Add(-age)),
			Artifacts: []*forlockv1.Artifact{{State: state}}}
	}
	const ok, gone = forlockv1.ArtifactState_ARTIFACT_STATE_AVAILABLE, forlockv1.ArtifactState_ARTIFACT_STATE_DELETED
	day := 24 * time.Hour
	// Newest first, as the catalog scans.
	rps := []*forlockv1.RestorePoint{
		rp("a-new", "n1", 1*day, ok),
		rp("manual", "n1", 2*day, ok),
		rp("a-old", "n1", 40*day, ok),
		rp("a-older", "n1", 41*day, ok),
		rp("a-deleted", "n1", 50*day, gone),
		rp("a-only-n2", "n2", 90*day, ok),
		rp("b-old", "n1", 40*day, ok),
		rp("b-older", "n1", 41*day, ok),
		rp("x-old", "n1", 40*day, ok),
	}
	scheduleOf := func(r *forlockv1.RestorePoint) string {
		switch r.GetId()[0] {
		case 'a':
			return "daily"
		case 'b':
			return "forever"
		case 'x':
			return "removed-from-config"
		}
		return ""
	}
	scheds := []BackupSchedule{{Name: "daily", Keep: 30 * day}, {Name: "forever"}}
	var ids []string
	for _, r := range expired(rps, scheduleOf, scheds, now) {
		ids = append(ids, r.GetId())
	}
	// a-new is young; manual and x-old are no schedule's; a-deleted holds
	// nothing; a-only-n2 is n2's newest; b-* are kept forever.
	require.Equal(t, []string{"a-old", "a-older"}, ids)
}

// TestScheduledBackupAndRetention submits a schedule's job on a real
// control plane twice for one fire time (one job), and applies retention
// to a catalog holding old scheduled, young scheduled and manual restore
// points.
func TestScheduledBackupAndRetention(t *testing.T) {
	e := startEnv(t, nil)
	node := e.onlineNode("web-1")

	sc := BackupSchedule{Name: "redis-15min", Cron: "*/15 * * * *", Only: []forlockv1.ArtifactKind{forlockv1.ArtifactKind_ARTIFACT_KIND_REDIS}, Keep: 24 * time.Hour}
	require.NoError(t, sc.check())
	at := time.Date(2026, 11, 26, 10, 15, 0, 0, time.UTC)
	ctx := t.Context()
	e.srv.submitScheduled(ctx, &sc, at)
	e.srv.submitScheduled(ctx, &sc, at) // a restart at the same fire time
	list, _, err := e.srv.jobs.List(jobs.Filter{Kind: "backup", Limit: 100})
	require.NoError(t, err)
	require.Len(t, list, 1, "one job per fire time")
	require.Equal(t, "backup-schedule/redis-15min/2026-11-26T10:15:00Z", list[0].GetIdempotencyKey())
	require.Equal(t, sc.Only, list[0].GetSpec().GetBackup().GetOnly())

	// The catalog: restore points of the schedule 1, 2 and 3 days old,
	// and a manual one 5 days old.
	now := time.Now()
	var w store.JobWrite
	for i, age := range []time.Duration{24, 48, 72, 120} {
		jobID, key := fmt.Sprintf("job%d", i), fmt.Sprintf("backup-schedule/redis-15min/%d", i)
		if i == 3 {
			key = "" // forlockctl backup
		}
		w.Jobs = append(w.Jobs, &forlockv1.Job{Id: jobID, Kind: "backup", IdempotencyKey: key, State: forlockv1.JobState_JOB_STATE_SUCCEEDED})
		rpID := fmt.Sprintf("rp%d", 3-i) // restore point IDs sort by time, the oldest first
		w.RestorePoints = append(w.RestorePoints, &forlockv1.RestorePoint{
			Id: rpID, NodeId: node, NodeName: "web-1", JobId: jobID,
			CreatedAt: timestamppb.New(now.Add(-(age*time.Hour + time.Minute))),
			Artifacts: []*forlockv1.Artifact{{Id: rpID + "-redis", NodeId: node, Kind: forlockv1.ArtifactKind_ARTIFACT_KIND_REDIS,
				Location: "/var/backups/forlock/web-1/redis.rdb.zst.enc", State: forlockv1.ArtifactState_ARTIFACT_STATE_AVAILABLE, RestorePointId: rpID}},
		})
	}
	require.NoError(t, e.srv.store.SaveJobs(w))

	e.srv.applyRetention(ctx, []BackupSchedule{sc}, now)
	e.srv.applyRetention(ctx, []BackupSchedule{sc}, now) // once a day per restore point
	dels, _, err := e.srv.jobs.List(jobs.Filter{Kind: "delete_backup", Limit: 100})
	require.NoError(t, err)
	var deleted []string
	for _, j := range dels {
		deleted = append(deleted, j.GetSpec().GetDeleteBackup().GetRestorePointId())
	}
	// rp0 is the manual one, rp3 the schedule's newest (one day old), rp2
	// and rp1 two and three days old.
	require.ElementsMatch(t, []string{"rp2", "rp1"}, deleted)
}

// TestScheduleRunnerFires runs the scheduler on a real control plane with
// a one-second schedule: a job per fire time, each with its own key.
func TestScheduleRunnerFires(t *testing.T) {
	e := startEnv(t, nil)
	e.onlineNode("web-1")

	sc := BackupSchedule{Name: "tick", Cron: "@every 1s", Only: []forlockv1.ArtifactKind{forlockv1.ArtifactKind_ARTIFACT_KIND_CONFIG}}
	require.NoError(t, sc.check())
	ctx, cancel := context.WithTimeout(t.Context(), 3500*time.Millisecond)
	defer cancel()
	require.NoError(t, e.srv.runBackupSchedules(ctx, []BackupSchedule{sc}, time.Hour))
	list, _, err := e.srv.jobs.List(jobs.Filter{Kind: "backup", Limit: 100})
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(list), 2, "a job each second")
	require.LessOrEqual(t, len(list), 4)
	keys := map[string]bool{}
	for _, j := range list {
		require.Regexp(t, `^backup-schedule/tick/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$`, j.GetIdempotencyKey())
		keys[j.GetIdempotencyKey()] = true
	}
	require.Len(t, keys, len(list), "each fire time once")
}

// onlineNode enrolls and connects a node named name, waits until it is
// online and returns its ID.
func (e *env) onlineNode(name string) string {
	e.t.Helper()
	id := e.mustEnroll(e.token(1, time.Hour, nil), name)
	s, _ := e.connect(id)
	heartbeat(e.t, s, 1)
	e.waitState(name, forlockv1.NodeState_NODE_STATE_ONLINE, 5*time.Second)
	return id.resp.GetNodeId()
}
