// Package prometheus holds the alerting rules for Prometheus users
// (forlock-rules.yml) and their tests; it has no Go code of its own.
package prometheus

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/forlock/fleet/test/testenv"
)

func run(t *testing.T, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, testenv.RequireCommand(t, "promtool", "prometheus"), args...).CombinedOutput()
	require.NoError(t, err, "promtool %s:\n%s", strings.Join(args, " "), out)
}

func TestRulesPassPromtool(t *testing.T) {
	run(t, "check", "rules", "forlock-rules.yml")
	run(t, "test", "rules", "forlock-rules.test.yml")
}

type rule struct {
	Alert       string            `yaml:"alert"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

// Alerts returns the rules of forlock-rules.yml by alert name.
func alerts(t *testing.T) map[string]rule {
	t.Helper()
	var f struct {
		Groups []struct {
			Rules []rule `yaml:"rules"`
		} `yaml:"groups"`
	}
	b, err := os.ReadFile("forlock-rules.yml")
	require.NoError(t, err)
	require.NoError(t, yaml.Unmarshal(b, &f))
	out := map[string]rule{}
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			require.NotContains(t, out, r.Alert, "alert named twice")
			out[r.Alert] = r
		}
	}
	return out
}

// Every alert is tested firing and not firing; every alert has a severity
// and a runbook in docs/operations.md.
func TestRulesFileIsTested(t *testing.T) {
	var f struct {
		Tests []struct {
			AlertRuleTest []struct {
				Alertname string `yaml:"alertname"`
				ExpAlerts []any  `yaml:"exp_alerts"`
			} `yaml:"alert_rule_test"`
		} `yaml:"tests"`
	}
	b, err := os.ReadFile("forlock-rules.test.yml")
	require.NoError(t, err)
	require.NoError(t, yaml.Unmarshal(b, &f))
	firing, quiet := map[string]bool{}, map[string]bool{}
	for _, tc := range f.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				firing[a.Alertname] = true
			} else {
				quiet[a.Alertname] = true
			}
		}
	}
	rules := alerts(t)
	require.NotEmpty(t, rules)
	doc, err := os.ReadFile("../../docs/operations.md")
	require.NoError(t, err)
	for name, r := range rules {
		require.True(t, firing[name], "%s is never tested firing", name)
		require.True(t, quiet[name], "%s is never tested not firing", name)
		require.Contains(t, []string{"critical", "warning"}, r.Labels["severity"], name)
		require.Equal(t, "https://github.com/forlock/fleet/blob/main/docs/operations.md#alert-"+strings.ToLower(name),
			r.Annotations["runbook_url"], name)
		require.NotEmpty(t, r.Annotations["summary"], name)
		require.Contains(t, string(doc), `<a id="alert-`+strings.ToLower(name)+`"></a>`, "%s has no runbook in docs/operations.md", name)
	}
}
