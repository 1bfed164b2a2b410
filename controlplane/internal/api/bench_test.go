package api

import (
	"context"
	"fmt"
	"io"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/metadata"

	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// benchNodes is the number of enrolled nodes ListNodes returns.
const benchNodes = 100

// benchChains are the servers the benchmarks compare, as sub-benchmarks of
// one function so that `-count N` alternates them (method and figures:
// docs/benchmarks.md):
//   - A-before: the chain as it was before identities and the audit log
//     (admin token only, no audit interceptor, no audit log);
//   - B-identity: today's chain and audit log, called with the secret of an
//     operator identity (looked up in the store at each call);
//   - B-admin: today's chain and audit log, called with the admin token.
var benchChains = []struct {
	name     string
	preAudit bool
	identity bool
}{
	{"chain=A-before", true, false},
	{"chain=B-identity", false, true},
	{"chain=B-admin", false, false},
}

// benchServer starts a server with benchNodes enrolled (offline) nodes and
// returns it and the context of its caller.
func benchServer(b *testing.B, preAudit, identity bool) (*testServer, context.Context) {
	b.Helper()
	s := newTestServer(b, serverOptions{preAudit: preAudit, log: io.Discard})
	for i := range benchNodes {
		s.enroll(fmt.Sprintf("node-%03d", i), map[string]string{"env": "bench"})
	}
	ctx := s.ctx()
	if identity {
		id, err := forlockv1.NewAccessServiceClient(s.conn).CreateIdentity(ctx, &forlockv1.CreateIdentityRequest{Name: "bench", Role: "operator"})
		require.NoError(b, err)
		ctx = metadata.AppendToOutgoingContext(b.Context(), "authorization", "Bearer "+id.GetSecret())
	}
	return s, ctx
}

// requireAudited checks that the server audited what the benchmark says
// it measures: nothing before the audit log, at least min records after.
func requireAudited(b *testing.B, s *testServer, preAudit bool, minRecords int) {
	b.Helper()
	head, err := s.st.AuditHead()
	require.NoError(b, err)
	if preAudit {
		require.Zero(b, head, "audit records without an audit log")
		return
	}
	require.GreaterOrEqual(b, head, uint64(minRecords))
}

// BenchmarkListNodes: one ListNodes call of every node, through TLS over
// bufconn and the whole interceptor chain. ListNodes is not audited: B pays
// the identity lookup only.
func BenchmarkListNodes(b *testing.B) {
	for _, c := range benchChains {
		b.Run(c.name, func(b *testing.B) {
			s, ctx := benchServer(b, c.preAudit, c.identity)
			req := &forlockv1.ListNodesRequest{}
			for b.Loop() {
				resp, err := s.Nodes.ListNodes(ctx, req)
				if err != nil || len(resp.GetNodes()) != benchNodes {
					b.Fatalf("ListNodes: %d nodes, %v", len(resp.GetNodes()), err)
				}
			}
			requireAudited(b, s, c.preAudit, benchNodes) // the join tokens
		})
	}
}

// BenchmarkSubmitJob: one SubmitJob of a health_check on one node, which
// returns once the job is durable (the node is offline, its task stays
// queued). B also writes the call's audit record, in a transaction of its
// own after the handler's.
func BenchmarkSubmitJob(b *testing.B) {
	for _, c := range benchChains {
		b.Run(c.name, func(b *testing.B) {
			s, ctx := benchServer(b, c.preAudit, c.identity)
			req := &forlockv1.SubmitJobRequest{
				Spec:   &forlockv1.JobSpec{Kind: &forlockv1.JobSpec_HealthCheck{HealthCheck: &forlockv1.HealthCheckSpec{}}},
				Target: &forlockv1.Target{Nodes: []string{"node-000"}},
			}
			for b.Loop() {
				resp, err := s.Jobs.SubmitJob(ctx, req)
				if err != nil || !resp.GetCreated() {
					b.Fatalf("SubmitJob: created %v, %v", resp.GetCreated(), err)
				}
			}
			requireAudited(b, s, c.preAudit, benchNodes+b.N)
		})
	}
}
