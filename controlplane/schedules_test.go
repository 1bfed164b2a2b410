package controlplane

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/forlock/fleet/controlplane/internal/jobs"
	"github.com/forlock/fleet/controlplane/internal/scheduler"
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
	st, err := parseFile([]byte(guideSchedules))
	require.NoError(t, err)
	scheds, err := backupSchedules(st.schedules)
	require.NoError(t, err)
	require.Len(t, scheds, 3)
	pg := scheds[0]
	require.Equal(t, []forlockv1.ArtifactKind{forlockv1.ArtifactKind_ARTIFACT_KIND_POSTGRES}, pg.Only)
	require.Equal(t, 720*time.Hour, pg.Keep)
	require.Equal(t, forlockv1.PostgresFormat_POSTGRES_FORMAT_LOGICAL, pg.PostgresFormat)
	require.Equal(t, "0 2 * * *", pg.Cron)
	require.Equal(t, "*/15 * * * *", scheds[1].Cron)
	cfgDaily := scheds[2]
	require.Equal(t, "env=prod", cfgDaily.Selector)
	require.Equal(t, uint32(2), cfgDaily.MaxParallel)
	require.Equal(t, &forlockv1.S3Location{Bucket: "fleet-backups", Prefix: "config/"}, cfgDaily.Destination.GetS3())
	require.Zero(t, cfgDaily.Keep, "no keep: kept forever")

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
		{"unknown field", `{name: d, cron: "@daily", retention: 3}`, `line 3: unknown key 'backup_schedules[0].retention': remove it`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseFile([]byte("version: 1\nbackup_schedules:\n  - " + tt.entry + "\n"))
			require.ErrorContains(t, err, tt.want)
		})
	}
	dup := Config{DataDir: t.TempDir(), Listen: "127.0.0.1:0", BackupSchedules: []scheduler.BackupSchedule{{Name: "d", Cron: "@daily"}, {Name: "d", Cron: "@hourly"}}}
	dup.setDefaults()
	require.ErrorContains(t, dup.validate(), "backup schedule d: named twice")
}

// TestScheduledBackupAndRetention submits a schedule's job on a real
// control plane (its job engine and store, as the wiring passes them)
// twice for one fire time (one job), and applies retention to a catalog
// holding old scheduled, young scheduled and manual restore points.
func TestScheduledBackupAndRetention(t *testing.T) {
	e := startEnv(t, nil)
	node := e.onlineNode("web-1")

	sc := scheduler.BackupSchedule{Name: "redis-15min", Cron: "*/15 * * * *", Only: []forlockv1.ArtifactKind{forlockv1.ArtifactKind_ARTIFACT_KIND_REDIS}, Keep: 24 * time.Hour}
	require.NoError(t, sc.Check())
	sch, err := scheduler.New(scheduler.Config{Jobs: e.srv.jobs, Catalog: e.srv.store, Backups: []scheduler.BackupSchedule{sc}})
	require.NoError(t, err)
	at := time.Date(2026, 11, 26, 10, 15, 0, 0, time.UTC)
	ctx := t.Context()
	sch.SubmitScheduled(ctx, &sc, at)
	sch.SubmitScheduled(ctx, &sc, at) // a restart at the same fire time
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

	sch.ApplyRetention(ctx, now)
	sch.ApplyRetention(ctx, now) // once a day per restore point
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

// TestScheduleRunnerFires starts a real control plane configured with a
// one-second schedule, as a config file would: Run starts the scheduler,
// which submits a job per fire time, each with its own key.
func TestScheduleRunnerFires(t *testing.T) {
	sc := scheduler.BackupSchedule{Name: "tick", Cron: "@every 1s", Only: []forlockv1.ArtifactKind{forlockv1.ArtifactKind_ARTIFACT_KIND_CONFIG}}
	start := time.Now()
	e := startEnv(t, func(c *Config) { c.BackupSchedules = []scheduler.BackupSchedule{sc} })
	e.onlineNode("web-1")

	time.Sleep(3500 * time.Millisecond)
	list, _, err := e.srv.jobs.List(jobs.Filter{Kind: "backup", Limit: 100})
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(list), 2, "a job each second")
	require.LessOrEqual(t, len(list), int(time.Since(start)/time.Second)+1, "no more than one a second")
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

func TestVerifyScheduleConfig(t *testing.T) {
	for _, tt := range []struct {
		name, file string
		want       []scheduler.VerifySchedule
	}{
		{"unset: weekly", "version: 1\n", []scheduler.VerifySchedule{scheduler.DefaultVerifySchedule}},
		{"empty: off", "version: 1\nverify_schedules: []\n", []scheduler.VerifySchedule{}},
		{"given", "version: 1\nverify_schedules:\n  - {name: prod-daily, cron: \"@daily\", selector: env=prod}\n",
			[]scheduler.VerifySchedule{{Name: "prod-daily", Cron: "@daily", Selector: "env=prod"}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			st, err := parseFile([]byte(tt.file))
			require.NoError(t, err)
			got, err := verifySchedules(st.verify)
			require.NoError(t, err)
			require.Len(t, got, len(tt.want))
			for i := range got {
				require.Equal(t, []string{tt.want[i].Name, tt.want[i].Cron, tt.want[i].Selector}, []string{got[i].Name, got[i].Cron, got[i].Selector})
			}
		})
	}
	st, err := parseFile([]byte("version: 1\nverify_schedules:\n  - {name: d, cron: \"every week\"}\n"))
	require.NoError(t, err)
	_, err = verifySchedules(st.verify)
	require.ErrorContains(t, err, `verify schedule d: cron "every week": give five fields in UTC`)
}
