package commands

import (
	"testing"
	"time"

	"github.com/spf13/pflag"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

func TestJobCommandLineErrors(t *testing.T) {
	home := t.TempDir()
	conn := map[string]string{"HOME": home, envAddr: closedAddr(t), envToken: "tok"}
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"no target", []string{"health-check"}, "no target: choose the nodes with exactly one of --node NAME (repeatable), -l/--selector SELECTOR or --all"},
		{"node and all", []string{"health-check", "--node", "a", "--all"}, "--node and --all cannot be combined"},
		{"selector and node", []string{"health-check", "-l", "env=prod", "--node", "a"}, "--node and --selector cannot be combined"},
		{"all three", []string{"health-check", "-l", "env=prod", "--node", "a", "--all"}, "--node and --selector and --all cannot be combined"},
		{"all false", []string{"health-check", "--all=false"}, "--all=false selects no nodes"},
		{"empty selector", []string{"health-check", "-l", ""}, "empty label selector"},
		{"bad selector", []string{"health-check", "-l", "env==x"}, "label selector"},
		{"empty node", []string{"health-check", "--node", ""}, "--node: empty node name"},
		{"offline value", []string{"health-check", "--all", "--offline", "later"}, `--offline "later": use wait (queue until the node connects) or skip`},
		{"deadline negative", []string{"health-check", "--all", "--deadline", "-5m"}, "--deadline -5m0s: give a positive duration"},
		{"deadline too long", []string{"health-check", "--all", "--deadline", "169h"}, "at most 168h0m0s (7 days)"},
		{"deadline not a duration", []string{"health-check", "--all", "--deadline", "tomorrow"}, `invalid argument "tomorrow" for "--deadline"`},
		{"negative parallel", []string{"health-check", "--all", "--max-parallel", "-1"}, `invalid argument "-1" for "--max-parallel"`},
		{"long idempotency key", []string{"health-check", "--all", "--idempotency-key", string(make([]byte, 129))}, "use at most 128"},
		{"unprintable idempotency key", []string{"health-check", "--all", "--idempotency-key", "a\tb"}, "printable ASCII"},
		{"args", []string{"health-check", "--all", "web-1"}, "takes no arguments"},
		{"list bad state", []string{"jobs", "list", "--state", "running,done"}, `unknown job state "done": use one or more of running, succeeded, partially-failed, failed, cancelled`},
		{"list bad since", []string{"jobs", "list", "--since", "yesterday"}, `--since "yesterday": give a duration back from now`},
		{"list negative until", []string{"jobs", "list", "--until", "-1h"}, "--until -1h: give a positive duration"},
		{"list since after until", []string{"jobs", "list", "--since", "1h", "--until", "2h"}, "--since 1h is not before --until 2h"},
		{"list limit zero", []string{"jobs", "list", "--limit", "0"}, "--limit 0: give a number from 1 to 1000"},
		{"list limit high", []string{"jobs", "list", "--limit", "1001"}, "--limit 1001"},
		{"get without id", []string{"jobs", "get"}, "needs exactly one job ID"},
		{"watch two ids", []string{"jobs", "watch", "a", "b"}, "needs exactly one job ID"},
		{"cancel without id", []string{"jobs", "cancel"}, "needs exactly one job ID"},
		{"unknown jobs subcommand", []string{"jobs", "rerun"}, `unknown command "rerun" for "forlockctl jobs"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := run(t, conn, tt.args...)
			require.Equal(t, ExitUsage, code, "stderr: %s", stderr)
			require.Contains(t, stderr, tt.wantErr)
			require.Empty(t, stdout)
		})
	}
}

func TestJobFlagsRequest(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want *forlockv1.SubmitJobRequest
	}{
		{"nodes", []string{"--node", "web-1", "--node", "web-2,web-3"}, &forlockv1.SubmitJobRequest{
			Target:  &forlockv1.Target{Nodes: []string{"web-1", "web-2", "web-3"}},
			Rollout: &forlockv1.Rollout{OfflinePolicy: forlockv1.OfflinePolicy_OFFLINE_POLICY_WAIT},
		}},
		{"selector and rollout", []string{"-l", "env=prod,!canary", "--max-parallel", "5", "--canary", "1",
			"--stop-after-failures", "2", "--deadline", "30m", "--offline", "SKIP", "--idempotency-key", "nightly-2026-03-01"},
			&forlockv1.SubmitJobRequest{
				Target: &forlockv1.Target{LabelSelector: "env=prod,!canary"},
				Rollout: &forlockv1.Rollout{MaxParallel: 5, Canary: 1, StopAfterFailures: 2,
					Deadline: durationOf(30 * time.Minute), OfflinePolicy: forlockv1.OfflinePolicy_OFFLINE_POLICY_SKIP},
				IdempotencyKey: "nightly-2026-03-01",
			}},
		{"all", []string{"--all"}, &forlockv1.SubmitJobRequest{
			Target:  &forlockv1.Target{All: true},
			Rollout: &forlockv1.Rollout{OfflinePolicy: forlockv1.OfflinePolicy_OFFLINE_POLICY_WAIT},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := pflag.NewFlagSet("health-check", pflag.ContinueOnError)
			var f jobFlags
			f.register(fs)
			require.NoError(t, fs.Parse(tt.args))
			got, err := f.request(fs, nil)
			require.NoError(t, err)
			requireProtoEqual(t, tt.want, got)
		})
	}
}

func TestParseTimeFlag(t *testing.T) {
	now := renderNow
	ts, err := parseTimeFlag("since", "90m", now)
	require.NoError(t, err)
	require.Equal(t, now.Add(-90*time.Minute), ts.AsTime())

	ts, err = parseTimeFlag("since", "2026-02-28T10:00:00+01:00", now)
	require.NoError(t, err)
	require.Equal(t, time.Date(2026, 2, 28, 9, 0, 0, 0, time.UTC), ts.AsTime())

	ts, err = parseTimeFlag("since", "", now)
	require.NoError(t, err)
	require.Nil(t, ts)

	_, err = parseTimeFlag("until", "0s", now)
	require.ErrorContains(t, err, "--until 0s: give a positive duration")
}

func TestParseJobStates(t *testing.T) {
	got, err := parseJobStates([]string{"running, Partially_Failed", "failed,running", "cancelled", "succeeded"})
	require.NoError(t, err)
	require.Equal(t, []forlockv1.JobState{
		forlockv1.JobState_JOB_STATE_RUNNING, forlockv1.JobState_JOB_STATE_PARTIALLY_FAILED,
		forlockv1.JobState_JOB_STATE_FAILED, forlockv1.JobState_JOB_STATE_CANCELLED, forlockv1.JobState_JOB_STATE_SUCCEEDED,
	}, got)
	for s, name := range jobStateNames {
		got, err := parseJobStates([]string{name})
		require.NoError(t, err)
		require.Equal(t, []forlockv1.JobState{s}, got, "names round-trip")
	}
}

func durationOf(d time.Duration) *durationpb.Duration { return durationpb.New(d) }

func requireProtoEqual(t *testing.T, want, got proto.Message) {
	t.Helper()
	if !proto.Equal(want, got) {
		require.Equal(t, protojson.Format(want), protojson.Format(got))
	}
}
