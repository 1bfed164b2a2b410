package backup

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/forlock/fleet/agent/internal/dockerrt"
	"github.com/forlock/fleet/agent/internal/tasks"
	"github.com/forlock/fleet/internal/keys"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"

	"github.com/forlock/fleet/test/testenv"
)

// testNode is a real Forlock test node (deploy/testnode).
type testNode struct {
	name      string
	rt        *dockerrt.Runtime
	redisAddr string
}

// startNode brings up a test node. Without the images the test fails naming
// the command that builds them.
func startNode(t *testing.T) testNode {
	t.Helper()
	n := testenv.UpTestNode(t, "fl-bk")
	rt, err := dockerrt.New(dockerrt.Config{Names: n.Containers()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = rt.Close() })
	return testNode{name: n.Name, rt: rt, redisAddr: n.RedisAddr}
}

func (n testNode) sh(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("docker", args...).CombinedOutput()
	require.NoError(t, err, "docker %v: %s", args, out)
	return strings.TrimSpace(string(out))
}

// summary is the stand-in API's checksum over every vault row.
func (n testNode) summary(t *testing.T) string {
	t.Helper()
	return n.sh(t, "exec", n.name+"-api", "forlockapi", "summary")
}

func (n testNode) psql(t *testing.T, sql string) {
	t.Helper()
	n.sh(t, "exec", "-u", "postgres", n.name+"-postgres", "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", "forlock", "-c", sql)
}

// apiStartedAt is when the API container last started: unchanged means
// it was never stopped.
func (n testNode) apiStartedAt(t *testing.T) string {
	t.Helper()
	return n.sh(t, "inspect", "-f", "{{.State.Status}} {{.State.StartedAt}}", n.name+"-api")
}

// composeDir makes a compose directory like a node's.
func composeDir(t *testing.T) string {
	t.Helper()
	d := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(d, "docker-compose.yml"), []byte("services: {}\n"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(d, ".env"), []byte("FORLOCK_DB_PASSWORD=test\n"), 0o600))
	require.NoError(t, os.MkdirAll(filepath.Join(d, "backups"), 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(d, "backups", "old.tar.gz"), []byte("not config"), 0o600))
	return d
}

// kek is a local key-encryption key, as the control plane has.
func kek(t *testing.T) *keys.File {
	t.Helper()
	k, err := keys.LoadOrCreateFile(filepath.Join(t.TempDir(), "kek.json"))
	require.NoError(t, err)
	return k
}

// taskKey makes a fresh data key named name, as the control plane does.
func taskKey(t *testing.T, k *keys.File, name string) *forlockv1.TaskKey {
	t.Helper()
	dk, err := keys.NewDataKey()
	require.NoError(t, err)
	wrapped, err := k.Wrap(context.Background(), dk)
	require.NoError(t, err)
	return &forlockv1.TaskKey{Name: name, KeyId: k.KeyID(), WrappedKey: wrapped, PlainKey: dk}
}

func backupKeysFor(t *testing.T, k *keys.File) []*forlockv1.TaskKey {
	t.Helper()
	return []*forlockv1.TaskKey{taskKey(t, k, "postgres"), taskKey(t, k, "redis"), taskKey(t, k, "config")}
}

// progressLog keeps the progress a handler reports.
type progressLog struct {
	mu  sync.Mutex
	all []*forlockv1.Progress
	on  func(*forlockv1.Progress)
}

func (p *progressLog) report(pr *forlockv1.Progress) {
	p.mu.Lock()
	p.all = append(p.all, pr)
	on := p.on
	p.mu.Unlock()
	if on != nil {
		on(pr)
	}
}

func (p *progressLog) phases() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, pr := range p.all {
		if len(out) == 0 || out[len(out)-1] != pr.GetPhase() {
			out = append(out, pr.GetPhase())
		}
	}
	return out
}

func backupSpec(dest *forlockv1.BackupDestination, only ...forlockv1.ArtifactKind) *forlockv1.JobSpec {
	return &forlockv1.JobSpec{Kind: &forlockv1.JobSpec_Backup{Backup: &forlockv1.BackupSpec{Only: only, Destination: dest}}}
}

func restoreSpec(arts ...*forlockv1.Artifact) *forlockv1.JobSpec {
	return &forlockv1.JobSpec{Kind: &forlockv1.JobSpec_Restore{Restore: &forlockv1.RestoreSpec{Artifacts: arts}}}
}

// assignment is a task of spec carrying the keys k.
func assignment(spec *forlockv1.JobSpec, k ...*forlockv1.TaskKey) tasks.Assignment {
	return tasks.Assignment{JobID: "job-test", TaskID: "task-test", Spec: spec, Keys: k}
}

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// files lists the regular files under dir, relative.
func files(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	require.NoError(t, filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, rel)
		}
		return nil
	}))
	return out
}
