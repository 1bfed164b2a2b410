package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"

	"github.com/forlock/fleet/agent"
	"github.com/forlock/fleet/controlplane"
	"github.com/forlock/fleet/internal/protocol"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// BenchmarkSubmitToAllRunning measures, for a job on every node of an
// in-process fleet, the time from SubmitJob to each task being RUNNING (p50,
// p99) and to all of them running. Agents hold their task until it is
// cancelled, so every iteration ends with a cancel. The method is in
// docs/benchmarks.md. Run with: make bench (BENCH_AGENTS=1000 by default).
func BenchmarkSubmitToAllRunning(b *testing.B) {
	n := benchAgents(b)
	f := newFleet(b, func(c *controlplane.Config) { c.HeartbeatInterval = 10 * time.Second })
	token := f.joinToken(uint32(n))
	hold := agent.TaskHandler(agent.TaskHandlerFunc(func(ctx context.Context, _ agent.TaskAssignment, _ func(*forlockv1.Progress)) (agent.TaskResult, error) {
		<-ctx.Done()
		return agent.TaskResult{}, ctx.Err()
	}))
	for i := range n {
		f.runAgent(agentOpts{name: fmt.Sprintf("bench-%04d", i), token: token, handlers: map[protocol.Kind]agent.TaskHandler{"health_check": hold}})
	}
	f.waitOnline(n)

	var lat []time.Duration
	var allRunning []time.Duration
	b.ResetTimer()
	for b.Loop() {
		start := time.Now()
		resp, err := f.jobs().SubmitJob(f.admin(), &forlockv1.SubmitJobRequest{
			Spec:   &forlockv1.JobSpec{Kind: &forlockv1.JobSpec_HealthCheck{HealthCheck: &forlockv1.HealthCheckSpec{}}},
			Target: all,
		})
		require.NoError(b, err)
		id := resp.GetJob().GetId()
		running := waitAllRunning(b, f, id, n)
		b.StopTimer()
		for _, at := range running {
			lat = append(lat, at.Sub(start))
		}
		allRunning = append(allRunning, slices.MaxFunc(running, time.Time.Compare).Sub(start))
		_, err = f.jobs().CancelJob(f.admin(), &forlockv1.CancelJobRequest{Id: id})
		require.NoError(b, err)
		f.watch(id)
		b.StartTimer()
	}
	b.StopTimer()
	slices.Sort(lat)
	slices.Sort(allRunning)
	b.ReportMetric(ms(pct(lat, 50)), "p50-task-ms")
	b.ReportMetric(ms(pct(lat, 99)), "p99-task-ms")
	b.ReportMetric(ms(pct(allRunning, 50)), "all-running-ms")
}

// BenchmarkBaselineFsyncPerTransition is the naive design the engine
// replaces, measured on the same disk in the same run: one bbolt
// transaction (one fsync) per task transition, for the two transitions
// (dispatched, running) of every task of a job on n nodes.
func BenchmarkBaselineFsyncPerTransition(b *testing.B) {
	n := benchAgents(b)
	db, err := bolt.Open(filepath.Join(b.TempDir(), "baseline.db"), 0o600, nil)
	require.NoError(b, err)
	defer func() { _ = db.Close() }()
	payload := make([]byte, 200)
	for b.Loop() {
		for i := range 2 * n {
			err := db.Update(func(tx *bolt.Tx) error {
				bk, err := tx.CreateBucketIfNotExists([]byte("tasks"))
				if err != nil {
					return err
				}
				return bk.Put([]byte(strconv.Itoa(i%n)), payload)
			})
			require.NoError(b, err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "all-running-ms")
}

func waitAllRunning(b *testing.B, f *fleet, id string, n int) []time.Time {
	b.Helper()
	ctx, cancel := context.WithTimeout(f.admin(), 2*time.Minute)
	defer cancel()
	stream, err := f.jobs().WatchJob(ctx, &forlockv1.WatchJobRequest{Id: id, FromStart: true})
	require.NoError(b, err)
	var at []time.Time
	for len(at) < n {
		m, err := stream.Recv()
		require.NoError(b, err)
		if ev := m.GetEvent(); ev.GetTaskState() == forlockv1.TaskState_TASK_STATE_RUNNING && ev.GetProgress() == nil {
			at = append(at, ev.GetAt().AsTime())
		}
	}
	return at
}

func benchAgents(b *testing.B) int {
	b.Helper()
	if v, err := strconv.Atoi(os.Getenv("BENCH_AGENTS")); err == nil && v > 0 {
		return v
	}
	return 1000
}

func pct(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, len(sorted)*p/100)]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
