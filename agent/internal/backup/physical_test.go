package backup

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/forlock/fleet/agent/internal/dbsource"
	"github.com/forlock/fleet/agent/internal/dockerrt"
	"github.com/forlock/fleet/internal/artifact"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// TestPhysicalBackupAndRestore makes a physical backup of a real node,
// changes it, refuses a backup of another major version with nothing
// stopped, puts the old data back when the restored cluster cannot start,
// and restores: every row as at the backup, and what was created after it
// gone.
func TestPhysicalBackupAndRestore(t *testing.T) {
	n := startNode(t)
	ctx := testCtx(t)
	n.sh(t, "exec", n.name+"-api", "forlockapi", "load", "--mb", "5")
	want := n.summary(t)

	root := t.TempDir()
	cfg := nodeConfig(n, root)
	var bases []dbsource.BasePosition
	cfg.OnBaseBackup = func(p dbsource.BasePosition) { bases = append(bases, p) }
	bh, err := NewHandler(cfg)
	require.NoError(t, err)
	rh, err := NewRestoreHandler(cfg)
	require.NoError(t, err)
	k := kek(t)
	key := taskKey(t, k, "postgres")
	plain := bytes.Clone(key.GetPlainKey())

	spec := backupSpec(nil, forlockv1.ArtifactKind_ARTIFACT_KIND_POSTGRES)
	spec.GetBackup().PostgresFormat = forlockv1.PostgresFormat_POSTGRES_FORMAT_PHYSICAL
	res, err := bh.Run(ctx, assignment(spec, key), func(*forlockv1.Progress) {})
	require.NoError(t, err)
	require.Len(t, res.Artifacts, 1)
	pg := res.Artifacts[0]
	require.Regexp(t, `^postgres_\d{8}_\d{6}\.base\.tar\.zst\.enc$`, pg.GetFileName())
	require.Equal(t, forlockv1.PostgresFormat_POSTGRES_FORMAT_PHYSICAL, pg.GetPostgresFormat())
	require.Equal(t, "15", pg.GetPostgresVersion())
	require.Regexp(t, `^[0-9A-F]+/[0-9A-F]+$`, pg.GetWalStartLsn())
	require.Regexp(t, `^[0-9A-F]+/[0-9A-F]+$`, pg.GetWalEndLsn())
	require.Equal(t, uint32(1), pg.GetTimeline())
	require.WithinDuration(t, time.Now(), pg.GetBackupEndTime().AsTime(), time.Minute)
	require.Equal(t, []dbsource.BasePosition{{StartLSN: pg.GetWalStartLsn(), EndLSN: pg.GetWalEndLsn(), Timeline: 1,
		EndTime: pg.GetBackupEndTime().AsTime()}}, bases, "told once, with the artifact's position")
	require.Greater(t, pg.GetPlainBytes(), uint64(5<<20), "the cluster holds the 5 MB of rows")
	pg.Id = "rp1-postgres"

	// After the backup: rows change, and a table and a role appear, which a
	// restore of the whole cluster takes away.
	n.psql(t, "DELETE FROM vault_items WHERE id % 3 = 0; CREATE TABLE after_backup (x int); CREATE ROLE after_backup")
	changed := n.summary(t)
	require.NotEqual(t, want, changed)
	restoreKey := func(a *forlockv1.Artifact) *forlockv1.TaskKey {
		return &forlockv1.TaskKey{Name: a.GetId(), KeyId: a.GetKeyId(), WrappedKey: a.GetWrappedKey(), PlainKey: bytes.Clone(plain)}
	}
	dataDir := n.sh(t, "exec", "-u", "postgres", n.name+"-postgres", "psql", "-XAtc", "SHOW data_directory")
	leftovers := func(t *testing.T) {
		t.Helper()
		out := n.sh(t, "exec", n.name+"-postgres", "ls", "-A", dataDir)
		require.NotContains(t, out, incomingDir)
		require.NotContains(t, out, previousDir)
	}

	t.Run("another major version is refused before anything stops", func(t *testing.T) {
		a := proto.CloneOf(pg)
		a.PostgresVersion = "14"
		started, pgStarted := n.apiStartedAt(t), n.sh(t, "inspect", "-f", "{{.State.StartedAt}}", n.name+"-postgres")
		_, err := rh.Run(ctx, assignment(restoreSpec(a), restoreKey(a)), func(*forlockv1.Progress) {})
		require.ErrorContains(t, err, "the backup is of PostgreSQL 14 and the server runs 15")
		require.ErrorContains(t, err, "nothing was stopped or changed")
		require.Equal(t, started, n.apiStartedAt(t))
		require.Equal(t, pgStarted, n.sh(t, "inspect", "-f", "{{.State.StartedAt}}", n.name+"-postgres"))
		require.Equal(t, changed, n.summary(t))
		leftovers(t)
	})

	t.Run("a cluster that cannot start is rolled back", func(t *testing.T) {
		// The same backup with a postgresql.conf the server refuses.
		bad := rewriteArtifact(t, pg, plain, filepath.Join(root, n.name, "bad.base.tar.zst.enc"), func(name string, body []byte) []byte {
			if name == "postgresql.conf" {
				return append(body, "\nshared_buffers = 'not a size'\n"...)
			}
			return body
		})
		_, err := rh.Run(ctx, assignment(restoreSpec(bad), restoreKey(bad)), func(*forlockv1.Progress) {})
		require.ErrorContains(t, err, "the restored cluster did not start")
		require.ErrorContains(t, err, "the previous data is back in place and PostgreSQL runs on it")
		require.Equal(t, changed, n.summary(t), "the data as before the restore")
		st, err := n.rt.State(ctx, "api")
		require.NoError(t, err)
		require.Equal(t, dockerrt.State{Name: n.name + "-api", Status: "running", Health: "healthy"}, st)
		leftovers(t)
	})

	t.Run("a flipped byte is refused before anything stops", func(t *testing.T) {
		raw, err := os.ReadFile(pg.GetLocation())
		require.NoError(t, err)
		raw[len(raw)*2/3] ^= 0x01
		a := proto.CloneOf(pg)
		a.Location = filepath.Join(root, n.name, "flipped.base.tar.zst.enc")
		require.NoError(t, os.WriteFile(a.GetLocation(), raw, 0o600))
		started := n.apiStartedAt(t)
		_, err = rh.Run(ctx, assignment(restoreSpec(a), restoreKey(a)), func(*forlockv1.Progress) {})
		require.ErrorIs(t, err, artifact.ErrChecksumMismatch)
		require.ErrorContains(t, err, "nothing was stopped or changed")
		require.Equal(t, started, n.apiStartedAt(t))
		require.Equal(t, changed, n.summary(t))
		leftovers(t)
	})

	t.Run("a tar that is not a base backup is refused before anything stops", func(t *testing.T) {
		bad := rewriteArtifact(t, pg, plain, filepath.Join(root, n.name, "nolabel.base.tar.zst.enc"), func(name string, body []byte) []byte {
			if name == "backup_label" {
				return nil // dropped
			}
			return body
		})
		started := n.apiStartedAt(t)
		_, err := rh.Run(ctx, assignment(restoreSpec(bad), restoreKey(bad)), func(*forlockv1.Progress) {})
		require.ErrorContains(t, err, "not a base backup: no backup_label in the tar")
		require.ErrorContains(t, err, "nothing was stopped or changed")
		require.Equal(t, started, n.apiStartedAt(t))
		leftovers(t)
	})

	t.Run("restore", func(t *testing.T) {
		// What an interrupted staging left must not mix with this backup.
		n.sh(t, "exec", "-u", "postgres", n.name+"-postgres", "sh", "-c", "mkdir -p "+dataDir+"/"+incomingDir+" && touch "+dataDir+"/"+incomingDir+"/stale-file")
		var prog progressLog
		res, err := rh.Run(ctx, assignment(restoreSpec(pg), restoreKey(pg)), prog.report)
		require.NoError(t, err)
		require.Equal(t, want, n.summary(t), "every row as at the backup")
		require.Contains(t, res.Details[0], "postgres: restored "+pg.GetFileName()+" (physical, ")
		out := n.sh(t, "exec", "-u", "postgres", n.name+"-postgres", "psql", "-XAtc",
			"SELECT count(*) FROM pg_class WHERE relname = 'after_backup' UNION ALL SELECT count(*) FROM pg_roles WHERE rolname = 'after_backup'")
		require.Equal(t, "0\n0", out, "the table and role made after the backup are gone")
		require.Subset(t, prog.phases(), []string{"verify and stage postgres", "stop api", "stop postgres", "swap data directory", "start postgres", "start api"})
		leftovers(t)
		require.NotContains(t, n.sh(t, "exec", n.name+"-postgres", "ls", "-A", dataDir), "stale-file")
	})
}

// rewriteArtifact writes a copy of the physical artifact a to path with
// each tar entry's body passed through edit (nil drops the entry), and
// returns its catalog entry.
func rewriteArtifact(t *testing.T, a *forlockv1.Artifact, key []byte, path string, edit func(name string, body []byte) []byte) *forlockv1.Artifact {
	t.Helper()
	f, err := os.Open(a.GetLocation())
	require.NoError(t, err)
	defer func() { _ = f.Close() }()
	hdr, body, err := artifact.Open(f, artifact.PlainKey(key))
	require.NoError(t, err)
	defer func() { _ = body.Close() }()
	var plain bytes.Buffer
	tr, tw := tar.NewReader(body), tar.NewWriter(&plain)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		b, err := io.ReadAll(tr)
		require.NoError(t, err)
		name := strings.TrimSuffix(h.Name, "/")
		if h.Typeflag == tar.TypeReg {
			if b = edit(name, b); b == nil {
				continue
			}
			h.Size = int64(len(b))
		}
		require.NoError(t, tw.WriteHeader(h))
		_, err = tw.Write(b)
		require.NoError(t, err)
	}
	require.NoError(t, tw.Close())
	out, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o600)
	require.NoError(t, err)
	defer func() { _ = out.Close() }()
	w, err := artifact.NewWriter(out, artifact.Header{Kind: hdr.Kind, Node: hdr.Node, Created: hdr.Created, KeyID: hdr.KeyID,
		WrappedKey: hdr.WrappedKey, FileName: hdr.FileName}, key)
	require.NoError(t, err)
	_, err = io.Copy(w, &plain)
	require.NoError(t, err)
	require.NoError(t, w.Close())
	c := proto.CloneOf(a)
	c.Location, c.Sha256, c.SizeBytes = path, w.SHA256(), uint64(w.Size()) //nolint:gosec // a size
	return c
}
