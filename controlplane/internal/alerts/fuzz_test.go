package alerts

import (
	"math"
	"testing"

	"go.yaml.in/yaml/v3"
)

// FuzzResolve feeds alerting.thresholds and alerting.overrides as an
// operator writes them: whatever is accepted is a set of thresholds the
// conditions can use (ratios within 0 to 1, positive durations, parsed
// selectors), and nothing panics.
func FuzzResolve(f *testing.F) {
	f.Add("thresholds: {disk_free_ratio: 0.2}\noverrides: [{selector: env=prod, thresholds: {cpu_used_ratio: 0.7}}]\n")
	f.Add("thresholds: {backup_max_age: 48h, certificate_critical: 400h}\n")
	f.Add("overrides: [{selector: '!a,b!=c', thresholds: {api_p95_seconds: .nan}}]\n")
	f.Add("thresholds: {memory_used_ratio: -0}\n")
	f.Fuzz(func(t *testing.T, in string) {
		var raw struct {
			Thresholds ThresholdsFile `yaml:"thresholds"`
			Overrides  []OverrideFile `yaml:"overrides"`
		}
		if yaml.Unmarshal([]byte(in), &raw) != nil {
			return
		}
		base, overrides, err := Resolve(raw.Thresholds, raw.Overrides)
		if err != nil {
			return
		}
		all := []Thresholds{base}
		for _, o := range overrides {
			all = append(all, o.Thresholds)
		}
		for _, th := range all {
			for _, r := range []float64{th.DiskFreeRatio, th.MemoryUsedRatio, th.CPUUsedRatio, th.DBConnectionsRatio} {
				if math.IsNaN(r) || r < 0 || r > 1 {
					t.Fatalf("accepted ratio %v", r)
				}
			}
			if math.IsNaN(th.APIP95Seconds) || th.APIP95Seconds <= 0 || th.CertificateCritical <= 0 || th.BackupMaxAge <= 0 ||
				th.WALArchiveMaxLag <= 0 || th.CertificateCritical > th.CertificateWarning || math.IsNaN(th.FailedLoginsPerMinute) {
				t.Fatalf("accepted thresholds %+v", th)
			}
		}
	})
}
