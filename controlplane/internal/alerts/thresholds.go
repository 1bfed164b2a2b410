package alerts

import (
	"fmt"
	"time"

	"github.com/forlock/fleet/internal/labels"
)

// Thresholds are the values conditions compare with; Defaults holds the
// operations guide's.
type Thresholds struct {
	DiskFreeRatio         float64       // ForlockDiskSpaceLow below this free share
	MemoryUsedRatio       float64       // ForlockMemoryHigh above this used share
	CPUUsedRatio          float64       // ForlockCPUHigh above
	APIP95Seconds         float64       // ForlockAPILatencyHigh above
	DBConnectionsRatio    float64       // ForlockDBConnectionsHigh above connections/max
	FailedLoginsPerMinute float64       // ForlockFailedLogins above, per address
	CertificateWarning    time.Duration // ForlockCertificateExpiring (warning) when expiring sooner
	CertificateCritical   time.Duration // ... and critical when sooner than this
	BackupMaxAge          time.Duration // ForlockBackupTooOld when the newest PostgreSQL backup is older
	WALArchiveMaxLag      time.Duration // ForlockWALArchiveBehind when the newest archived WAL ends longer ago
}

// Defaults are the operations guide's alert thresholds.
var Defaults = Thresholds{
	DiskFreeRatio: 0.10, MemoryUsedRatio: 0.90, CPUUsedRatio: 0.85, APIP95Seconds: 0.5, DBConnectionsRatio: 0.90,
	FailedLoginsPerMinute: 10, CertificateWarning: 14 * 24 * time.Hour, CertificateCritical: 3 * 24 * time.Hour,
	BackupMaxAge: 26 * time.Hour, WALArchiveMaxLag: 5 * time.Minute,
}

// ThresholdsFile is alerting.thresholds (and an override's thresholds) as
// written in the config file: every field optional, unset keeps the value
// it overrides.
type ThresholdsFile struct {
	DiskFreeRatio         *float64       `yaml:"disk_free_ratio"`
	MemoryUsedRatio       *float64       `yaml:"memory_used_ratio"`
	CPUUsedRatio          *float64       `yaml:"cpu_used_ratio"`
	APIP95Seconds         *float64       `yaml:"api_p95_seconds"`
	DBConnectionsRatio    *float64       `yaml:"db_connections_ratio"`
	FailedLoginsPerMinute *float64       `yaml:"failed_logins_per_minute"`
	CertificateWarning    *time.Duration `yaml:"certificate_warning"`
	CertificateCritical   *time.Duration `yaml:"certificate_critical"`
	BackupMaxAge          *time.Duration `yaml:"backup_max_age"`
	WALArchiveMaxLag      *time.Duration `yaml:"wal_archive_max_lag"`
}

// OverrideFile is one entry of alerting.overrides.
type OverrideFile struct {
	Selector   string         `yaml:"selector"`
	Thresholds ThresholdsFile `yaml:"thresholds"`
}

// Override is a checked OverrideFile: the fleet's thresholds with the
// override's values on top, for the nodes its selector matches.
type Override struct {
	Selector   labels.Selector
	Thresholds Thresholds
}

// apply returns t with f's set values.
func (f ThresholdsFile) apply(t Thresholds) Thresholds {
	set := func(dst *float64, v *float64) {
		if v != nil {
			*dst = *v
		}
	}
	setD := func(dst *time.Duration, v *time.Duration) {
		if v != nil {
			*dst = *v
		}
	}
	set(&t.DiskFreeRatio, f.DiskFreeRatio)
	set(&t.MemoryUsedRatio, f.MemoryUsedRatio)
	set(&t.CPUUsedRatio, f.CPUUsedRatio)
	set(&t.APIP95Seconds, f.APIP95Seconds)
	set(&t.DBConnectionsRatio, f.DBConnectionsRatio)
	set(&t.FailedLoginsPerMinute, f.FailedLoginsPerMinute)
	setD(&t.CertificateWarning, f.CertificateWarning)
	setD(&t.CertificateCritical, f.CertificateCritical)
	setD(&t.BackupMaxAge, f.BackupMaxAge)
	setD(&t.WALArchiveMaxLag, f.WALArchiveMaxLag)
	return t
}

// check says what is wrong with a set of thresholds, naming the key.
func (t Thresholds) check() error {
	for _, r := range []struct {
		key string
		v   float64
	}{{"disk_free_ratio", t.DiskFreeRatio}, {"memory_used_ratio", t.MemoryUsedRatio}, {"cpu_used_ratio", t.CPUUsedRatio},
		{"db_connections_ratio", t.DBConnectionsRatio}} {
		if !(r.v >= 0 && r.v <= 1) {
			return fmt.Errorf("%s %v: give a ratio from 0 to 1, e.g. 0.9 for 90 %%", r.key, r.v)
		}
	}
	if !(t.APIP95Seconds > 0) {
		return fmt.Errorf("api_p95_seconds %v: give a positive number of seconds, e.g. 0.5", t.APIP95Seconds)
	}
	if !(t.FailedLoginsPerMinute >= 0) {
		return fmt.Errorf("failed_logins_per_minute %v: give a count of zero or more", t.FailedLoginsPerMinute)
	}
	for _, r := range []struct {
		key string
		v   time.Duration
	}{{"certificate_warning", t.CertificateWarning}, {"certificate_critical", t.CertificateCritical},
		{"backup_max_age", t.BackupMaxAge}, {"wal_archive_max_lag", t.WALArchiveMaxLag}} {
		if r.v <= 0 {
			return fmt.Errorf("%s %s: give a positive duration, e.g. 26h", r.key, r.v)
		}
	}
	if t.CertificateCritical > t.CertificateWarning {
		return fmt.Errorf("certificate_critical %s is longer than certificate_warning %s: critical is the later, shorter stage", t.CertificateCritical, t.CertificateWarning)
	}
	return nil
}

// Resolve checks the fleet's thresholds and overrides from the config file
// and returns them merged over the defaults.
func Resolve(fleet ThresholdsFile, overrides []OverrideFile) (Thresholds, []Override, error) {
	base := fleet.apply(Defaults)
	if err := base.check(); err != nil {
		return Thresholds{}, nil, fmt.Errorf("alerting.thresholds: %w", err)
	}
	out := make([]Override, 0, len(overrides))
	for i, o := range overrides {
		if o.Selector == "" {
			return Thresholds{}, nil, fmt.Errorf("alerting.overrides[%d]: give a selector, e.g. env=prod (alerting.thresholds is for every node)", i)
		}
		sel, err := labels.ParseSelector(o.Selector)
		if err != nil {
			return Thresholds{}, nil, fmt.Errorf("alerting.overrides[%d]: %w", i, err)
		}
		t := o.Thresholds.apply(base)
		if err := t.check(); err != nil {
			return Thresholds{}, nil, fmt.Errorf("alerting.overrides[%d] (%s): %w", i, o.Selector, err)
		}
		out = append(out, Override{Selector: sel, Thresholds: t})
	}
	return base, out, nil
}

// thresholdsFor picks a node's thresholds: the first override whose
// selector matches its labels, else the fleet's.
func thresholdsFor(base Thresholds, overrides []Override, nodeLabels map[string]string) Thresholds {
	for _, o := range overrides {
		if o.Selector.Matches(nodeLabels) {
			return o.Thresholds
		}
	}
	return base
}
