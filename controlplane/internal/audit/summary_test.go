package audit

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

func TestSummarizeDropsSecretsAndKeepsTheRest(t *testing.T) {
	const token = "fjt_c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2Vj"
	csr := []byte("-----BEGIN CERTIFICATE REQUEST----- der bytes")
	got := Summarize(&forlockv1.EnrollRequest{JoinToken: token, Name: "web-1", Csr: csr, Facts: &forlockv1.HostFacts{Hostname: "web-1.example"}})
	require.NotContains(t, got, token)
	require.NotContains(t, got, "der bytes")
	require.Equal(t, `join_token=<redacted> name="web-1" csr=<redacted> facts={hostname="web-1.example"}`, got)

	got = Summarize(&forlockv1.SubmitJobRequest{
		Target:         &forlockv1.Target{LabelSelector: "env=prod", Nodes: []string{"a", "b"}},
		Spec:           &forlockv1.JobSpec{Kind: &forlockv1.JobSpec_HealthCheck{HealthCheck: &forlockv1.HealthCheckSpec{}}},
		IdempotencyKey: "nightly-2026-12-03",
	})
	require.Contains(t, got, `label_selector="env=prod"`)
	require.Contains(t, got, `nodes=["a","b"]`)
	require.Contains(t, got, `health_check={}`)
	require.NotContains(t, got, "nightly-2026-12-03", "a field named like a key is redacted whatever it holds")
}

func TestSummarizeIsBounded(t *testing.T) {
	nodes := make([]string, 1000)
	for i := range nodes {
		nodes[i] = strings.Repeat("n", 300)
	}
	got := Summarize(&forlockv1.SubmitJobRequest{Target: &forlockv1.Target{Nodes: nodes}})
	require.LessOrEqual(t, len(got), maxSummary+len("…"))
	require.Contains(t, got, "…")
	require.Empty(t, Summarize(nil))
}

// TestShownRequestFields lists every string field of every request message
// of the API that a summary shows in clear. A new field that could carry a
// secret must be named so that it is redacted (or be bytes); a new field that
// is safe to show is added to testdata/shown-fields.txt after review.
func TestShownRequestFields(t *testing.T) {
	var shown []string
	seen := map[protoreflect.FullName]bool{}
	var walk func(prefix string, md protoreflect.MessageDescriptor)
	walk = func(prefix string, md protoreflect.MessageDescriptor) {
		if seen[md.FullName()] {
			return
		}
		seen[md.FullName()] = true
		defer delete(seen, md.FullName())
		fields := md.Fields()
		for i := range fields.Len() {
			fd := fields.Get(i)
			if redacted(fd) {
				continue
			}
			path := prefix + "." + string(fd.Name())
			switch {
			case fd.IsMap():
				if fd.MapValue().Kind() == protoreflect.StringKind {
					shown = append(shown, path+"{}")
				}
			case fd.Kind() == protoreflect.MessageKind:
				if !strings.HasPrefix(string(fd.Message().FullName()), "google.protobuf.") {
					walk(path, fd.Message())
				}
			case fd.Kind() == protoreflect.StringKind:
				shown = append(shown, path)
			}
		}
	}
	protoregistry.GlobalFiles.RangeFilesByPackage("forlock.v1", func(fd protoreflect.FileDescriptor) bool {
		msgs := fd.Messages()
		for i := range msgs.Len() {
			if md := msgs.Get(i); strings.HasSuffix(string(md.Name()), "Request") {
				walk(string(md.Name()), md)
			}
		}
		return true
	})
	slices.Sort(shown)
	golden := filepath.Join("testdata", "shown-fields.txt")
	if os.Getenv("UPDATE_GOLDEN") != "" {
		require.NoError(t, os.WriteFile(golden, []byte(strings.Join(shown, "\n")+"\n"), 0o644))
	}
	want, err := os.ReadFile(golden)
	require.NoError(t, err, "UPDATE_GOLDEN=1 go test -run TestShownRequestFields writes it; review the list")
	require.Equal(t, string(want), strings.Join(shown, "\n")+"\n",
		"a request field is shown in audit summaries that was not reviewed: redact it (name it like a secret, or bytes) or add it to %s", golden)
}

func TestFailuresAggregate(t *testing.T) {
	var f Failures
	t0 := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	for i := range 10000 {
		f.Add(t0.Add(time.Duration(i)*time.Millisecond), "10.0.0.9", "/forlock.v1.NodeService/ListNodes", "Unauthenticated", "admin token refused")
	}
	f.Add(t0.Add(61*time.Second), "10.0.0.9", "/forlock.v1.NodeService/ListNodes", "Unauthenticated", "admin token refused")
	require.Empty(t, f.Drain(t0.Add(30*time.Second), false), "the minute is not over")
	got := f.Drain(t0.Add(61*time.Second), false)
	require.Len(t, got, 1)
	require.Equal(t, uint64(10000), got[0].Count)
	require.Equal(t, t0, got[0].Time)
	require.Equal(t, "10.0.0.9", got[0].Client)
	rest := f.Drain(t0.Add(61*time.Second), true)
	require.Len(t, rest, 1)
	require.Equal(t, uint64(1), rest[0].Count)

	// Distinct clients are bounded per flush.
	f = Failures{Max: 10}
	for i := range 1000 {
		f.Add(t0, "10.0."+string(rune('0'+i%10))+"."+strings.Repeat("1", i%7+1), "m", "Unauthenticated", "r")
	}
	got = f.Drain(t0.Add(time.Minute), false)
	require.LessOrEqual(t, len(got), 11)
	var total uint64
	for _, r := range got {
		total += r.Count
	}
	require.Equal(t, uint64(1000), total, "nothing is lost, only merged")
}

func TestSummarizeSortsMaps(t *testing.T) {
	got := Summarize(&forlockv1.CreateJoinTokenRequest{Labels: map[string]string{"zone": "b", "env": "prod", "app": "vault"}, Description: "rack 4"})
	require.Contains(t, got, `labels={"app":"vault","env":"prod","zone":"b"}`)
}
