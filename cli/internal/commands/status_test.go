package commands

import (
	"bytes"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/timestamppb"

	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

func TestPrintStatus(t *testing.T) {
	in := func(d time.Duration) *timestamppb.Timestamp { return timestamppb.New(renderNow.Add(d)) }
	nodes := []*forlockv1.Node{
		{Name: "web-1", State: forlockv1.NodeState_NODE_STATE_ONLINE, Connected: true, AgentVersion: "v0.4.0",
			CertificateNotAfter: in(90 * 24 * time.Hour),
			Health: &forlockv1.HealthReport{
				Checks: []*forlockv1.CheckResult{check("disk", warn, ""), check("memory", ok, ""), check("redis", crit, "")},
				Containers: []*forlockv1.ContainerStatus{
					{Image: "registry.example.com/forlock/api:1.4.2@sha256:ab"}, {Image: "forlock-redis:7"}, {Image: "forlock-redis:7"},
				},
				Certificate: &forlockv1.CertificateInfo{NotAfter: in(5 * 24 * time.Hour)},
			}},
		{Name: "web-2", State: forlockv1.NodeState_NODE_STATE_UNREACHABLE, Facts: &forlockv1.HostFacts{AgentVersion: "v0.3.9"},
			CertificateNotAfter: in(16 * time.Hour),
			Health: &forlockv1.HealthReport{Checks: []*forlockv1.CheckResult{check("disk", ok, "")},
				Certificate: &forlockv1.CertificateInfo{NotAfter: in(60 * 24 * time.Hour)}}},
		{Name: "web-3", State: forlockv1.NodeState_NODE_STATE_OFFLINE, CertificateNotAfter: in(-time.Hour)},
		{Name: "new-1", State: forlockv1.NodeState_NODE_STATE_ENROLLED, CertificateNotAfter: in(10 * 24 * time.Hour)},
	}
	var out bytes.Buffer
	require.NoError(t, printStatus(&out, renderNow, nodes))
	require.Equal(t, `4 nodes: 1 online, 1 unreachable, 1 offline, 1 never connected; checks: 1 critical, 1 warn; 1 agent certificates overdue for renewal; 1 TLS certificates expire within 14 days: forlockctl certs rotate

NAME   STATE        CONNECTED  AGENT   FAILING                     IMAGES                     CERT       TLS
web-1  online       yes        v0.4.0  redis(CRITICAL),disk(WARN)  api:1.4.2,forlock-redis:7  90d        5d !
web-2  unreachable  no         v0.3.9  -                           -                          16h        60d
web-3  offline      no         -       -                           -                          expired !  -
new-1  enrolled     no         -       -                           -                          10d        -
`, out.String())
}

func TestPrintStatusEmptyFleet(t *testing.T) {
	var out bytes.Buffer
	require.NoError(t, printStatus(&out, renderNow, nil))
	require.Equal(t, "0 nodes: 0 online, 0 unreachable, 0 offline; checks: 0 critical, 0 warn\n", out.String())
}

func TestCertLeft(t *testing.T) {
	for _, tt := range []struct {
		left time.Duration
		want string
	}{
		{0, "expired !"},
		{59 * time.Minute, "0h !"},
		{time.Hour, "1h"},
		{47 * time.Hour, "47h"},
		{14 * 24 * time.Hour, "14d"},
		{400 * 24 * time.Hour, "400d"},
	} {
		n := &forlockv1.Node{CertificateNotAfter: timestamppb.New(renderNow.Add(tt.left))}
		require.Equal(t, tt.want, certLeft(renderNow, n), "%s left", tt.left)
	}
	require.Equal(t, "-", certLeft(renderNow, &forlockv1.Node{}))
}

func TestControlPlaneLine(t *testing.T) {
	ok := &forlockv1.GetStatusResponse{ServerVersion: "v0.5.0", DataDisk: &forlockv1.DataDiskStatus{
		DataDir: "/var/lib/forlock-controlplane", FreeBytes: 7 << 30, ReserveBytes: 64 << 20}}
	require.Equal(t, "control plane v0.5.0: data disk ok, 7.0 GiB free (reserve 64.0 MiB)", controlPlaneLine(renderNow, ok))

	full := &forlockv1.GetStatusResponse{ServerVersion: "v0.5.0", DataDisk: &forlockv1.DataDiskStatus{
		DataDir: "/var/lib/forlock-controlplane", FreeBytes: 3 << 20, ReserveBytes: 64 << 20, WritesRefused: true,
		RefusedSince: timestamppb.New(renderNow.Add(-2 * time.Minute)),
		Message:      "control plane data disk is full: free space in /var/lib/forlock-controlplane (3 MiB free, reserve 64 MiB)"}}
	require.Equal(t, "control plane v0.5.0: DISK FULL since "+renderNow.Add(-2*time.Minute).UTC().Format("15:04:05Z")+
		" (2m0s ago): submits, token changes, node removal and cancels are refused; reads and heartbeats go on\n"+
		"  control plane data disk is full: free space in /var/lib/forlock-controlplane (3 MiB free, reserve 64 MiB)",
		controlPlaneLine(renderNow, full))

	require.Equal(t, "control plane: disk state unknown (it predates ControlPlaneService: upgrade it)", controlPlaneLine(renderNow, nil))
}
