package e2e

import (
	"context"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// rpoWriter commits rows continuously, one sequence number per
// transaction, and records client-side when each commit returned.
type rpoWriter struct {
	mu        sync.Mutex
	committed []time.Time // committed[i]: when the commit of seq i+1 returned
	done      chan struct{}
	err       error // what ended it
}

func pgDSN(n *testNode) string {
	return "postgres://forlock:forlock-test@127.0.0.1:" + n.pgPort + "/forlock?sslmode=disable"
}

// startRPOWriter creates the probe table and writes into it until the
// node's PostgreSQL goes away (or stop is closed).
func startRPOWriter(t *testing.T, n *testNode, stop <-chan struct{}) *rpoWriter {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, pgDSN(n))
	require.NoError(t, err)
	_, err = conn.Exec(ctx, "CREATE TABLE rpo_probe (seq bigint PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp())")
	require.NoError(t, err)
	w := &rpoWriter{done: make(chan struct{})}
	go func() {
		defer close(w.done)
		defer func() { _ = conn.Close(context.Background()) }()
		for seq := 1; ; seq++ {
			select {
			case <-stop:
				return
			default:
			}
			// Each statement is its own transaction: when Exec returns
			// nil the row is committed.
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			_, err := conn.Exec(cctx, "INSERT INTO rpo_probe (seq) VALUES ($1)", seq)
			cancel()
			if err != nil {
				w.mu.Lock()
				w.err = err
				w.mu.Unlock()
				return
			}
			w.mu.Lock()
			w.committed = append(w.committed, time.Now())
			w.mu.Unlock()
			time.Sleep(5 * time.Millisecond) // ~150 commits a second: enough to time the loss to a few ms
		}
	}()
	return w
}

// count is how many rows have been committed so far.
func (w *rpoWriter) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.committed)
}

// at is when the commit of seq returned.
func (w *rpoWriter) at(seq int) time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.committed[seq-1]
}

// rpoCase is where a node's WAL and base backup go.
type rpoCase struct {
	// nodeArgs are the agent flags of both nodes; archiveArgs more of the
	// lost one, which archives.
	nodeArgs, archiveArgs []string
	// backupArgs are the base backup's destination flags.
	backupArgs []string
	// bound is the sanity bound on the seconds lost: far above the target,
	// so the test catches a broken archiver without timing the machine.
	bound time.Duration
}

// TestWALRecoveryPointObjective measures the RPO of WAL archiving to a host
// backup directory: rows are written continuously, the control plane is
// down for a while (archiving goes on), then the whole node is lost at a
// random moment (agent, containers, volumes, the WAL spool and the agent's
// state: only the backup directory survives) and restored --to-latest onto
// a fresh node.
func TestWALRecoveryPointObjective(t *testing.T) {
	requireTestNodeImages(t)
	backups := filepath.Join(t.TempDir(), "backups")
	runRPO(t, rpoCase{
		nodeArgs: []string{"--backup-dirs", backups, "--compose-dir", repoPath("deploy", "testnode")},
		bound:    30 * time.Second,
	})
}

// TestWALRecoveryPointObjectiveS3 is TestWALRecoveryPointObjective with
// the WAL and the base backup in a bucket of an S3 server, the partial
// segment shipped every 10 s (the default to S3): the target is ≤ 60 s.
func TestWALRecoveryPointObjectiveS3(t *testing.T) {
	requireTestNodeImages(t)
	endpoint := startS3(t)
	keyDir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(keyDir, "access"), []byte("forlock-test\n"), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(keyDir, "secret"), []byte("forlock-test-secret\n"), 0o600))
	runRPO(t, rpoCase{
		nodeArgs: []string{"--s3-endpoint", endpoint, "--s3-access-key-file", filepath.Join(keyDir, "access"),
			"--s3-secret-key-file", filepath.Join(keyDir, "secret"), "--compose-dir", repoPath("deploy", "testnode"),
			"--backup-dirs", filepath.Join(t.TempDir(), "local")},
		archiveArgs: []string{"--wal-archive-bucket", "fleet-backups", "--wal-archive-prefix", "e2e"},
		backupArgs:  []string{"--s3", "fleet-backups", "--s3-prefix", "e2e"},
		bound:       60 * time.Second,
	})
}

// runRPO runs the RPO measure of tc. The binaries are built without -race:
// the figure is a latency.
func runRPO(t *testing.T, tc rpoCase) {
	t.Helper()
	start := time.Now()
	c := &cluster{t: t, dataDir: filepath.Join(t.TempDir(), "cp"), addr: freePort(t), bin: plainBinaries(t)}
	c.startControlPlane()
	// Debug logs: on a failure they show every ship of the partial segment.
	lost := c.upTestNode("fl-rpo-lost", slices.Concat([]string{"--wal-archive=true", "--log-level", "debug"}, tc.archiveArgs, tc.nodeArgs)...)

	stop := make(chan struct{})
	defer close(stop)
	w := startRPOWriter(t, lost, stop)
	out, err := c.ctlErr(append([]string{"backup", "--node", lost.name, "--only", "postgres", "--pg-format", "physical"}, tc.backupArgs...)...)
	require.NoError(t, err, "%s", out)
	t.Logf("base backup done at %s, %d rows written", time.Since(start).Round(time.Second), w.count())
	require.Eventually(t, func() bool { _, ok := c.window(lost.name); return ok }, 60*time.Second, 500*time.Millisecond, "the node has a recovery window")

	// Archiving goes on while the control plane is down: the rows
	// committed before and while it is down must survive.
	time.Sleep(2 * time.Second)
	c.cp.kill(syscall.SIGTERM)
	beforeDown := w.count()
	time.Sleep(12 * time.Second)
	whileDown := w.count()
	c.startControlPlane()
	c.waitOnline(lost.name)
	require.Greater(t, whileDown, beforeDown, "the writer went on while the control plane was down")
	t.Logf("control plane down for 12s: rows %d..%d committed meanwhile", beforeDown+1, whileDown)

	// The node is lost at a random moment: PostgreSQL and the agent die
	// together, then its containers, volumes (the spool lives in the
	// postgres container) and the agent's state go.
	time.Sleep(time.Duration(2000+rand.IntN(4000)) * time.Millisecond)
	if w, ok := c.window(lost.name); ok {
		t.Logf("before the loss the control plane knows the WAL up to %s (%s ago)", w.Latest.Format("15:04:05.000"), time.Since(w.Latest).Round(time.Millisecond))
	}
	var kill sync.WaitGroup
	kill.Go(func() { _ = exec.Command("docker", "kill", lost.name+"-postgres").Run() })
	kill.Go(func() { lost.agent.kill(syscall.SIGKILL) })
	kill.Wait()
	select {
	case <-w.done:
	case <-time.After(30 * time.Second):
		t.Fatal("the writer did not notice PostgreSQL die")
	}
	last := w.count()
	lastAt := w.at(last)
	t.Logf("node lost after seq %d (writer: %v)", last, w.err)
	out2, err := exec.Command("bash", repoPath("deploy", "testnode", "down.sh"), lost.name).CombinedOutput()
	require.NoError(t, err, "%s", out2)
	require.NoError(t, os.RemoveAll(lost.agentDir))

	fresh := c.upTestNode("fl-rpo-new", tc.nodeArgs...)
	t0 := time.Now()
	out, err = c.ctlErr("restore", "--to-latest", "--from-node", lost.name, "--node", fresh.name, "--yes")
	require.NoError(t, err, "%s", out)
	t.Logf("restore --to-latest took %s", time.Since(t0).Round(100*time.Millisecond))

	ctx := context.Background()
	conn, err := pgx.Connect(ctx, pgDSN(fresh))
	require.NoError(t, err)
	defer func() { _ = conn.Close(ctx) }()
	var n, lo, hi int
	require.NoError(t, conn.QueryRow(ctx, "SELECT count(*), coalesce(min(seq), 0), coalesce(max(seq), 0) FROM rpo_probe").Scan(&n, &lo, &hi))
	require.Positive(t, n, "rows restored")
	require.Equal(t, 1, lo, "the restored rows start at seq 1")
	require.Equal(t, hi, n, "the restored rows are seq 1..%d with no hole", hi)
	// The commit that failed when PostgreSQL died may or may not have been
	// committed: one more than the writer saw is possible, not two.
	require.LessOrEqual(t, hi, last+1, "no row the writer never wrote")
	require.GreaterOrEqual(t, hi, whileDown, "the rows committed before and while the control plane was down survive")
	k := min(hi, last)
	lostFor := lastAt.Sub(w.at(k))
	t.Logf("RPO: %.2fs lost (last committed seq %d at %s, newest restored seq %d committed at %s)",
		lostFor.Seconds(), last, lastAt.Format("15:04:05.000"), hi, w.at(k).Format("15:04:05.000"))
	require.Less(t, lostFor, tc.bound, "seconds lost: far more than the target; is the archiver shipping?")
	t.Logf("whole test %s", time.Since(start).Round(time.Second))
}
