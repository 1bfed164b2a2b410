package walarchive

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/forlock/fleet/agent/internal/dockerrt"
	"github.com/forlock/fleet/internal/backupstore"
	"github.com/forlock/fleet/internal/keys"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
	"github.com/forlock/fleet/test/testenv"
)

// testNode is a real Forlock test node (deploy/testnode).
type testNode struct {
	name string
	rt   *dockerrt.Runtime
}

func startNode(t *testing.T) testNode {
	t.Helper()
	var names []string
	name := os.Getenv("FORLOCK_WAL_TEST_NODE")
	if name != "" {
		// A node already up (deploy/testnode/up.sh NAME), to iterate
		// without its start-up; never set in CI.
		names = testenv.TestNode{Name: name}.Containers()
	} else {
		n := testenv.UpTestNode(t, "fl-wal")
		name, names = n.Name, n.Containers()
	}
	rt, err := dockerrt.New(dockerrt.Config{Names: names})
	require.NoError(t, err)
	t.Cleanup(func() { _ = rt.Close() })
	return testNode{name: name, rt: rt}
}

func (n testNode) sh(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("docker", args...).CombinedOutput()
	require.NoError(t, err, "docker %v: %s", args, out)
	return strings.TrimSpace(string(out))
}

func (n testNode) psql(t *testing.T, sql string) string {
	t.Helper()
	return n.sh(t, "exec", "-u", "postgres", n.name+"-postgres", "psql", "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-d", "forlock", "-c", sql)
}

// rig is an archiver on a test node, writing to a host directory.
type rig struct {
	node     testNode
	stateDir string
	root     string
	keys     *KeyStore
	key      *forlockv1.ArchiveKey
	store    *backupstore.Dir
	arch     *Archiver
	stop     func()
}

const testPrefix = "wal/node-1/"

func newRig(t *testing.T, n testNode) *rig {
	t.Helper()
	r := &rig{node: n, stateDir: t.TempDir(), root: t.TempDir()}
	ks, err := OpenKeyStore(r.stateDir)
	require.NoError(t, err)
	k, err := keys.NewDataKey()
	require.NoError(t, err)
	r.key = &forlockv1.ArchiveKey{KeyId: "archive:node-1:1", PlainKey: k, CreatedAt: timestamppb.Now()}
	require.NoError(t, ks.Set(r.key))
	r.keys = ks
	r.store, err = backupstore.NewDir(backupstore.DirConfig{Root: r.root})
	require.NoError(t, err)
	return r
}

// start runs a fresh Archiver (as a restarted agent would) until stop.
func (r *rig) start(t *testing.T) {
	t.Helper()
	ks, err := OpenKeyStore(r.stateDir) // from the file, as after a restart
	require.NoError(t, err)
	a, err := New(Config{Docker: r.node.rt, Node: "node-1", Store: r.store, Prefix: testPrefix, Keys: ks,
		StateDir: r.stateDir, ShipInterval: time.Second, Logger: slog.New(slog.NewTextHandler(tlog{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	require.NoError(t, err)
	r.arch = a
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = a.Run(ctx) })
	r.stop = func() { cancel(); wg.Wait() }
	t.Cleanup(r.stop)
}

func (r *rig) keyring(t *testing.T) Keyring {
	t.Helper()
	f, err := keys.NewNamed(r.key.GetKeyId(), r.key.GetPlainKey())
	require.NoError(t, err)
	return Keyring{r.key.GetKeyId(): f}
}

// fetch decrypts a stored WAL file; "" when it is not there.
func (r *rig) fetch(t *testing.T, tl uint32, name string) []byte {
	t.Helper()
	if _, err := os.Stat(filepath.Join(r.root, StoredName(testPrefix, tl, name))); err != nil {
		return nil
	}
	var buf bytes.Buffer
	_, err := Fetch(context.Background(), r.store, testPrefix, tl, name, r.keyring(t), &buf)
	require.NoError(t, err)
	return buf.Bytes()
}

// currentSegment is the server's current WAL segment name.
func (n testNode) currentSegment(t *testing.T) string {
	t.Helper()
	return n.psql(t, "SELECT pg_walfile_name(pg_current_wal_lsn())")
}

func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", within, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func sha256hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// tlog sends the archiver's log to the test's.
type tlog struct{ t *testing.T }

func (l tlog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
