package scheduler

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestNextAndRequest: the operations guide's schedules (as the config file
// test in package controlplane parses them) fire in UTC and submit the
// backup job the guide describes, keyed by schedule and fire time.
func TestNextAndRequest(t *testing.T) {
	scheds := []BackupSchedule{
		{Name: "postgres-daily", Cron: "0 2 * * *", Only: []forlockv1.ArtifactKind{forlockv1.ArtifactKind_ARTIFACT_KIND_POSTGRES}, Keep: 720 * time.Hour},
		{Name: "redis-15min", Cron: "*/15 * * * *", Only: []forlockv1.ArtifactKind{forlockv1.ArtifactKind_ARTIFACT_KIND_REDIS}, Keep: 24 * time.Hour},
		{Name: "config-daily", Cron: "@daily", Only: []forlockv1.ArtifactKind{forlockv1.ArtifactKind_ARTIFACT_KIND_CONFIG}, Selector: "env=prod", MaxParallel: 2,
			Destination: &forlockv1.BackupDestination{Kind: &forlockv1.BackupDestination_S3{S3: &forlockv1.S3Location{Bucket: "fleet-backups", Prefix: "config/"}}}},
	}
	require.NoError(t, CheckSchedules(scheds))
	pg := scheds[0]
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
	require.False(t, req.GetTarget().GetAll(), "a selector: not every node")
}

func TestCheckSchedules(t *testing.T) {
	for _, tt := range []struct {
		name   string
		scheds []BackupSchedule
		want   string
	}{
		{"two", []BackupSchedule{{Name: "d", Cron: "@daily"}, {Name: "h", Cron: "@hourly", Keep: time.Hour}}, ""},
		{"named twice", []BackupSchedule{{Name: "d", Cron: "@daily"}, {Name: "d", Cron: "@hourly"}}, "backup schedule d: named twice"},
		{"bad name", []BackupSchedule{{Name: "Daily!", Cron: "@daily"}}, "a name is 1-40 lower-case letters"},
		{"time zone", []BackupSchedule{{Name: "d", Cron: "TZ=UTC 0 2 * * *"}}, "give five fields in UTC"},
		{"short keep", []BackupSchedule{{Name: "d", Cron: "@daily", Keep: 59 * time.Minute}}, "keep 59m0s: give at least 1h"},
		{"negative keep", []BackupSchedule{{Name: "d", Cron: "@daily", Keep: -time.Hour}}, "keep -1h0m0s"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckSchedules(tt.scheds)
			if tt.want == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tt.want)
		})
	}
}

func TestNewChecks(t *testing.T) {
	_, err := New(Config{})
	require.ErrorContains(t, err, "no job engine")
}
