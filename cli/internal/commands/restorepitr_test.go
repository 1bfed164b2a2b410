package commands

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/timestamppb"

	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

func TestPITRCommandLineErrors(t *testing.T) {
	conn := map[string]string{"HOME": t.TempDir(), envAddr: closedAddr(t), envToken: "tok"}
	for _, tt := range []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"both targets", []string{"restore", "--node", "a", "--to-time", "2026-12-03 18:02:11", "--to-latest"}, "--to-time and --to-latest cannot be combined"},
		{"with latest", []string{"restore", "--node", "a", "--to-latest", "--latest"}, "--latest restores a restore point"},
		{"with ids", []string{"restore", "--node", "a", "--to-latest", "rp1"}, "drop the IDs (rp1)"},
		{"with only", []string{"restore", "--node", "a", "--to-latest", "--only", "redis"}, "restores PostgreSQL only: drop --only"},
		{"bad time", []string{"restore", "--node", "a", "--to-time", "yesterday"}, `--to-time "yesterday": give RFC 3339`},
		{"needs yes", []string{"restore", "--node", "a", "--to-latest"}, "without confirmation: pass --yes"},
		{"list with to-time", []string{"restore", "--list", "--to-time", "2026-12-03 18:02:11"}, "drop --to-time"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := run(t, conn, tt.args...)
			require.Equal(t, ExitUsage, code, "stderr: %s", stderr)
			require.Contains(t, stderr, tt.wantErr)
		})
	}
}

func TestParseToTime(t *testing.T) {
	want := time.Date(2026, 12, 3, 18, 2, 11, 0, time.UTC)
	for _, in := range []string{"2026-12-03 18:02:11", "2026-12-03T18:02:11Z", "2026-12-03T19:02:11+01:00", " 2026-12-03 18:02:11 "} {
		got, err := parseToTime(in)
		require.NoError(t, err, in)
		require.True(t, want.Equal(got), "%s: %s", in, got)
	}
	got, err := parseToTime("2026-12-03T18:02:11.5Z")
	require.NoError(t, err)
	require.Equal(t, 500*time.Millisecond, got.Sub(want))
	for _, in := range []string{"", "2026-12-03", "18:02:11", "2026-12-03 18:02"} {
		_, err := parseToTime(in)
		require.Error(t, err, in)
	}
}

func TestPITRPromptAndWindows(t *testing.T) {
	at := time.Date(2026, 12, 3, 18, 2, 11, 0, time.UTC)
	got := restorePrompt(&restoreRequest{node: "web-1", spec: &forlockv1.RestoreSpec{ToTime: timestamppb.New(at)}}, nil, "cp:7443")
	require.Equal(t, "Restore node \"web-1\"'s PostgreSQL to 2026-12-03T18:02:11Z (physical base backup + WAL replay) via cp:7443?\nThis stops the node's API and replaces its database. [y/N]: ", got)
	got = restorePrompt(&restoreRequest{node: "web-2", spec: &forlockv1.RestoreSpec{ToLatest: true, SourceNode: "web-1"}}, nil, "cp:7443")
	require.Contains(t, got, `PostgreSQL to the end of its archived WAL from node "web-1"'s backups`)

	ws := []*forlockv1.RecoveryWindow{{NodeName: "web-1", Earliest: timestamppb.New(at), Latest: timestamppb.New(at.Add(time.Hour)), Timeline: 1, WalBytes: 48 << 20,
		Gaps: []*forlockv1.WalGap{{Timeline: 1, AfterLsn: "0/5000000", BeforeLsn: "0/7000000", AfterTime: timestamppb.New(at.Add(10 * time.Minute))}}}}
	var buf bytes.Buffer
	require.NoError(t, printWindowTable(&buf, ws))
	require.Equal(t, `NODE   PITR FROM             PITR TO               TIMELINE  WAL       GAPS
web-1  2026-12-03 18:02:11Z  2026-12-03 19:02:11Z  1         48.0 MiB  0/5000000..0/7000000 (after 2026-12-03 18:12:11Z)
`, buf.String())

	buf.Reset()
	require.NoError(t, printJSONMerged(&buf, &forlockv1.ListRestorePointsResponse{RestorePoints: []*forlockv1.RestorePoint{{Id: "rp1"}}},
		&forlockv1.ListRecoveryWindowsResponse{Windows: ws}))
	var out map[string][]map[string]any
	require.NoError(t, json.Unmarshal(buf.Bytes(), &out))
	require.Equal(t, "rp1", out["restorePoints"][0]["id"])
	require.Equal(t, "web-1", out["windows"][0]["nodeName"])
}
