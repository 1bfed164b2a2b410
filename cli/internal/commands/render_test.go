package commands

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

var renderNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func sampleNode() *forlockv1.Node {
	ts := func(d time.Duration) *timestamppb.Timestamp { return timestamppb.New(renderNow.Add(d)) }
	return &forlockv1.Node{
		Id:                  "n-7f3a",
		Name:                "web-1",
		Labels:              map[string]string{"env": "prod", "rack": "4"},
		State:               forlockv1.NodeState_NODE_STATE_ONLINE,
		StateChangedAt:      ts(-3 * time.Hour),
		EnrolledAt:          ts(-72 * time.Hour),
		LastEnrolledAt:      ts(-72 * time.Hour),
		Enrollments:         1,
		LastHeartbeatAt:     ts(-12 * time.Second),
		AgentVersion:        "v0.3.0",
		Capabilities:        []string{"backup", "restore"},
		Connected:           true,
		LastPingRtt:         durationpb.New(1200 * time.Microsecond),
		LastPingAt:          ts(-5 * time.Second),
		CertificateNotAfter: ts(20 * time.Hour),
		CertificateSerial:   "3f2a",
		Facts: &forlockv1.HostFacts{
			Hostname: "web-1.example", Os: "Debian GNU/Linux 12 (bookworm)", Kernel: "6.1.0-18-amd64", Arch: "amd64",
			Uptime:         durationpb.New(50 * time.Hour),
			DiskTotalBytes: 100 << 30, DiskFreeBytes: 75 << 30,
			MemoryTotalBytes: 8 << 30, MemoryAvailableBytes: 6 << 30,
		},
	}
}

func TestPrintNodeDetail(t *testing.T) {
	var out bytes.Buffer
	require.NoError(t, printNodeDetail(&out, renderNow, sampleNode()))
	for _, line := range []string{
		"ID:              n-7f3a",
		"Labels:          env=prod,rack=4",
		"State:           online since 2026-03-01 09:00:00 UTC (3h ago)",
		"Connected:       yes",
		"Last heartbeat:  12s ago",
		"Ping RTT:        1.2ms (answered 5s ago)",
		"Agent version:   v0.3.0",
		"OS:              Debian GNU/Linux 12 (bookworm)",
		"Uptime:          2d2h",
		"Disk:            25.0% used (25.0 of 100.0 GiB)",
		"Memory:          25.0% used (2.0 of 8.0 GiB)",
		"Cert serial:     3f2a",
		"Cert not after:  2026-03-02 08:00:00 UTC (in 20h)",
		"Enrollments:     1",
	} {
		require.Contains(t, out.String(), line+"\n")
	}
}

func TestPrintNodeDetailEmpty(t *testing.T) {
	var out bytes.Buffer
	require.NoError(t, printNodeDetail(&out, renderNow, &forlockv1.Node{Id: "n-1", Name: "fresh", State: forlockv1.NodeState_NODE_STATE_ENROLLED}))
	require.Contains(t, out.String(), "Last heartbeat:  never\n")
	require.Contains(t, out.String(), "Disk:            -\n")
	require.Contains(t, out.String(), "Hostname:        -\n")
}

func TestPrintNodeTable(t *testing.T) {
	var out bytes.Buffer
	require.NoError(t, printNodeTable(&out, renderNow, []*forlockv1.Node{sampleNode()}))
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	require.Len(t, lines, 2)
	require.Equal(t, []string{"NAME", "ID", "STATE", "SINCE", "HEARTBEAT", "PING", "AGENT", "LABELS"}, strings.Fields(lines[0]))
	require.Equal(t, []string{"web-1", "n-7f3a", "online", "3h", "ago", "12s", "ago", "1.2ms", "v0.3.0", "env=prod,rack=4"}, strings.Fields(lines[1]))
}

func TestPrintCreatedToken(t *testing.T) {
	var out bytes.Buffer
	resp := &forlockv1.CreateJoinTokenResponse{
		Secret: "flj_s3cret",
		Token: &forlockv1.JoinToken{
			Id: "0123456789ab", MaxUses: 5, Labels: map[string]string{"env": "prod"},
			ExpiresAt: timestamppb.New(renderNow.Add(time.Hour)),
		},
	}
	require.NoError(t, printCreatedToken(&out, renderNow, resp))
	s := out.String()
	require.Contains(t, s, "shown only this once")
	require.Contains(t, s, "\n    flj_s3cret\n")
	require.Contains(t, s, "ID:       0123456789ab\n")
	require.Contains(t, s, "Expires:  2026-03-01 13:00:00 UTC (in 1h)\n")
	require.Contains(t, s, "Uses:     0 of 5\n")
	require.Contains(t, s, "Labels:   env=prod\n")
}

func TestPrintJSONIsStable(t *testing.T) {
	resp := &forlockv1.ListNodesResponse{Nodes: []*forlockv1.Node{sampleNode()}}
	var a, b bytes.Buffer
	require.NoError(t, printJSON(&a, resp))
	require.NoError(t, printJSON(&b, resp))
	require.Equal(t, a.String(), b.String())
	require.True(t, strings.HasPrefix(a.String(), "{\n  \"nodes\": [\n"), a.String())

	var doc map[string][]map[string]any
	require.NoError(t, json.Unmarshal(a.Bytes(), &doc))
	n := doc["nodes"][0]
	require.Equal(t, "web-1", n["name"])
	require.Equal(t, "NODE_STATE_ONLINE", n["state"])

	var empty bytes.Buffer
	require.NoError(t, printJSON(&empty, &forlockv1.ListNodesResponse{}))
	require.Equal(t, "{}\n", empty.String(), "unset fields are left out")
}

func TestPrintNodeDetailReleases(t *testing.T) {
	img := func(svc, ref, id string) *forlockv1.ServiceImage {
		return &forlockv1.ServiceImage{Service: svc, Image: ref, ImageId: "sha256:" + id + strings.Repeat("0", 52)}
	}
	n := sampleNode()
	n.Release = &forlockv1.Release{
		Id: "3a9f0c2b71de55aa", At: timestamppb.New(renderNow.Add(-time.Hour)), JobId: "j-42",
		Services: []*forlockv1.ServiceImage{
			img("postgres", "forlock/postgres:16", "aaaaaaaaaaaa"),
			img("api", "reg.example:5000/forlock/api:v2", "bbbbbbbbbbbb"),
		},
	}
	n.ReleaseHistory = []*forlockv1.Release{{
		Id: "77e0d1c2b3a4ffff", At: timestamppb.New(renderNow.Add(-48 * time.Hour)),
		Services: []*forlockv1.ServiceImage{img("api", "reg.example:5000/forlock/api:v1", "cccccccccccc")},
	}}
	var out bytes.Buffer
	require.NoError(t, printNodeDetail(&out, renderNow, n))
	s := out.String()
	for _, line := range []string{
		"Release: 3a9f0c2b71de (since 2026-03-01 11:00:00 UTC (1h ago), job j-42)",
		"  SERVICE   IMAGE                            IMAGE ID",
		"  postgres  forlock/postgres:16              aaaaaaaaaaaa",
		"  api       reg.example:5000/forlock/api:v2  bbbbbbbbbbbb",
		"History:",
		"  RELEASE       AT                                API IMAGE                        JOB",
		"  77e0d1c2b3a4  2026-02-27 12:00:00 UTC (2d ago)  reg.example:5000/forlock/api:v1  -",
	} {
		require.Contains(t, s, line+"\n")
	}

	out.Reset()
	require.NoError(t, printNodeDetail(&out, renderNow, sampleNode()))
	require.Contains(t, out.String(), "\nRelease: none recorded yet")
}
