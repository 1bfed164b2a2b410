package controlplane

import (
	"fmt"
	"time"

	"github.com/forlock/fleet/controlplane/internal/scheduler"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// FileBackupSchedule is one entry of backup_schedules.
type FileBackupSchedule struct {
	Name        string   `yaml:"name"`
	Cron        string   `yaml:"cron"`
	Selector    string   `yaml:"selector"`
	Only        []string `yaml:"only"`
	PGFormat    string   `yaml:"pg_format"`
	Dest        string   `yaml:"dest"`
	S3Bucket    string   `yaml:"s3_bucket"`
	S3Prefix    string   `yaml:"s3_prefix"`
	MaxParallel uint32   `yaml:"max_parallel"`
	Keep        string   `yaml:"keep"`
}

// schedule turns the entry into a checked scheduler.BackupSchedule.
func (f FileBackupSchedule) schedule() (scheduler.BackupSchedule, error) {
	sc := scheduler.BackupSchedule{Name: f.Name, Cron: f.Cron, Selector: f.Selector, MaxParallel: f.MaxParallel}
	kinds := map[string]forlockv1.ArtifactKind{"postgres": forlockv1.ArtifactKind_ARTIFACT_KIND_POSTGRES,
		"redis": forlockv1.ArtifactKind_ARTIFACT_KIND_REDIS, "config": forlockv1.ArtifactKind_ARTIFACT_KIND_CONFIG}
	for _, o := range f.Only {
		k, ok := kinds[o]
		if !ok {
			return sc, fmt.Errorf("backup schedule %s: only %q: use postgres, redis or config", f.Name, o)
		}
		sc.Only = append(sc.Only, k)
	}
	switch f.PGFormat {
	case "", "logical":
		sc.PostgresFormat = forlockv1.PostgresFormat_POSTGRES_FORMAT_LOGICAL
	case "physical":
		sc.PostgresFormat = forlockv1.PostgresFormat_POSTGRES_FORMAT_PHYSICAL
	default:
		return sc, fmt.Errorf("backup schedule %s: pg_format %q: use logical or physical", f.Name, f.PGFormat)
	}
	switch {
	case f.Dest != "" && f.S3Bucket != "":
		return sc, fmt.Errorf("backup schedule %s: give dest or s3_bucket, not both", f.Name)
	case f.S3Prefix != "" && f.S3Bucket == "":
		return sc, fmt.Errorf("backup schedule %s: s3_prefix needs s3_bucket", f.Name)
	case f.Dest != "":
		sc.Destination = &forlockv1.BackupDestination{Kind: &forlockv1.BackupDestination_Dir{Dir: f.Dest}}
	case f.S3Bucket != "":
		sc.Destination = &forlockv1.BackupDestination{Kind: &forlockv1.BackupDestination_S3{S3: &forlockv1.S3Location{Bucket: f.S3Bucket, Prefix: f.S3Prefix}}}
	}
	if f.Keep != "" {
		d, err := time.ParseDuration(f.Keep)
		if err != nil {
			return sc, fmt.Errorf("backup schedule %s: keep %q: want a duration such as 720h (30 days)", f.Name, f.Keep)
		}
		sc.Keep = d
	}
	return sc, sc.Check()
}

// backupSchedules turns backup_schedules entries into checked schedules.
func backupSchedules(entries []FileBackupSchedule) ([]scheduler.BackupSchedule, error) {
	var out []scheduler.BackupSchedule
	for _, f := range entries {
		sc, err := f.schedule()
		if err != nil {
			return nil, err
		}
		out = append(out, sc)
	}
	return out, nil
}

// FileVerifySchedule is one entry of verify_schedules.
type FileVerifySchedule struct {
	Name     string `yaml:"name"`
	Cron     string `yaml:"cron"`
	Selector string `yaml:"selector"`
}

// verifySchedules turns verify_schedules entries into checked schedules;
// none given (nil) is the weekly default, an empty list turns drills off.
func verifySchedules(entries []FileVerifySchedule) ([]scheduler.VerifySchedule, error) {
	if entries == nil {
		return []scheduler.VerifySchedule{scheduler.DefaultVerifySchedule}, nil
	}
	out := []scheduler.VerifySchedule{}
	for _, f := range entries {
		out = append(out, scheduler.VerifySchedule{Name: f.Name, Cron: f.Cron, Selector: f.Selector})
	}
	return out, scheduler.CheckVerifySchedules(out)
}
