package commands

import (
	"bytes"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/timestamppb"

	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

func TestPrintAlerts(t *testing.T) {
	alerts := []*forlockv1.Alert{
		{Name: "ForlockNodeUnreachable", Severity: "critical", Node: "web-2", Since: timestamppb.New(renderNow.Add(-2 * time.Hour)),
			Summary: "node web-2 is unreachable: no heartbeat from its agent"},
		{Name: "ForlockJobFailed", Severity: "warning", Since: timestamppb.New(renderNow.Add(-5 * time.Minute)),
			Labels: map[string]string{"job": "j1", "kind": "backup"}, Summary: "job j1 (backup) failed: 1 of 1 tasks failed"},
	}
	var out bytes.Buffer
	require.NoError(t, printAlerts(&out, renderNow, alerts))
	require.Equal(t, `SEVERITY  NAME                    NODE   SINCE                              SUMMARY
critical  ForlockNodeUnreachable  web-2  2026-03-01T10:00:00Z (2h0m0s ago)  node web-2 is unreachable: no heartbeat from its agent
warning   ForlockJobFailed        -      2026-03-01T11:55:00Z (5m0s ago)    job j1 (backup) failed: 1 of 1 tasks failed
`, out.String())

	out.Reset()
	require.NoError(t, printStatusAlerts(&out, renderNow, alerts[:1]))
	require.Equal(t, `
1 alerts firing ('forlockctl alerts'):
SEVERITY  NAME                    NODE   SINCE                              SUMMARY
critical  ForlockNodeUnreachable  web-2  2026-03-01T10:00:00Z (2h0m0s ago)  node web-2 is unreachable: no heartbeat from its agent
`, out.String())

	out.Reset()
	require.NoError(t, printAlerts(&out, renderNow, nil))
	require.Equal(t, "no alerts firing\n", out.String())
	out.Reset()
	require.NoError(t, printStatusAlerts(&out, renderNow, nil))
	require.Equal(t, "\nno alerts firing\n", out.String())
}
