package backup

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/forlock/fleet/agent/internal/dockerrt"
	"github.com/forlock/fleet/internal/artifact"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"

	"github.com/forlock/fleet/test/testenv"
)

func nodeConfig(n testNode, dirs ...string) Config {
	return Config{Node: func() string { return n.name }, Docker: n.rt, RedisAddr: n.redisAddr, BackupDirs: dirs,
		StopTimeout: 10 * time.Second, HealthTimeout: 2 * time.Minute}
}

// TestBackupAndRestoreRoundTrip backs up a real node to a directory,
// changes rows and Redis keys, refuses damaged artifacts with nothing
// stopped, and restores: every row and the key as at the backup.
func TestBackupAndRestoreRoundTrip(t *testing.T) {
	n := startNode(t)
	ctx := testCtx(t)
	n.sh(t, "exec", n.name+"-api", "forlockapi", "load", "--mb", "5")
	rc := redis.NewClient(&redis.Options{Addr: n.redisAddr})
	defer func() { _ = rc.Close() }()
	require.NoError(t, rc.Set(ctx, "session:alice", "before-backup", 0).Err())
	want := n.summary(t) // rows and Redis sessions

	root := t.TempDir()
	cfg := nodeConfig(n, root)
	cfg.ComposeDir = composeDir(t)
	bh, err := NewHandler(cfg)
	require.NoError(t, err)
	rh, err := NewRestoreHandler(cfg)
	require.NoError(t, err)
	k := kek(t)
	bkeys := backupKeysFor(t, k)
	plainOf := map[string][]byte{}
	for _, tk := range bkeys {
		plainOf[tk.GetName()] = bytes.Clone(tk.GetPlainKey())
	}

	var prog progressLog
	res, err := bh.Run(ctx, assignment(backupSpec(nil), bkeys...), prog.report)
	require.NoError(t, err)
	require.Len(t, res.Artifacts, 3)
	require.Contains(t, res.Message, "backed up postgres, redis, config: 3 artifacts")
	require.Contains(t, res.Message, filepath.Join(root, n.name))
	require.Len(t, res.Details, 3)
	require.Subset(t, prog.phases(), []string{"backup postgres (1/3)", "backup redis (2/3)", "backup config (3/3)"})

	names := map[forlockv1.ArtifactKind]*regexp.Regexp{
		forlockv1.ArtifactKind_ARTIFACT_KIND_POSTGRES: regexp.MustCompile(`^postgres_\d{8}_\d{6}\.dump\.zst\.enc$`),
		forlockv1.ArtifactKind_ARTIFACT_KIND_REDIS:    regexp.MustCompile(`^redis_\d{8}_\d{6}\.rdb\.zst\.enc$`),
		forlockv1.ArtifactKind_ARTIFACT_KIND_CONFIG:   regexp.MustCompile(`^config_\d{8}_\d{6}\.tar\.zst\.enc$`),
	}
	byID := map[string]*forlockv1.Artifact{}
	for i, a := range res.Artifacts {
		kind := kindName(a.GetKind())
		require.Regexp(t, names[a.GetKind()], a.GetFileName())
		require.Equal(t, filepath.Join(root, n.name, a.GetFileName()), a.GetLocation())
		require.Len(t, a.GetSha256(), 64)
		require.Equal(t, bkeys[i].GetKeyId(), a.GetKeyId())
		require.Equal(t, bkeys[i].GetWrappedKey(), a.GetWrappedKey(), "the wrapped key exactly as the task gave it")
		require.Equal(t, "zstd", a.GetCompression())
		require.Positive(t, a.GetPlainBytes())
		fi, err := os.Stat(a.GetLocation())
		require.NoError(t, err)
		require.Equal(t, int64(a.GetSizeBytes()), fi.Size()) //nolint:gosec // a size
		require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
		f, err := os.Open(a.GetLocation())
		require.NoError(t, err)
		h, err := artifact.Verify(f, a.GetSha256(), artifact.PlainKey(plainOf[kind]))
		_ = f.Close()
		require.NoError(t, err, kind)
		require.Equal(t, kind, string(h.Kind))
		require.Equal(t, n.name, h.Node)
		require.Equal(t, strings.TrimSuffix(a.GetFileName(), ".zst.enc"), h.FileName)
		a.Id = "rp1-" + kind // the control plane's IDs
		byID[a.GetId()] = a
	}
	require.Greater(t, res.Artifacts[0].GetPlainBytes(), uint64(5<<20), "the dump holds the 5 MB of rows")

	t.Run("config artifact holds the compose dir, .env and nginx config", func(t *testing.T) {
		a := res.Artifacts[2]
		f, err := os.Open(a.GetLocation())
		require.NoError(t, err)
		defer func() { _ = f.Close() }()
		_, body, err := artifact.Open(f, artifact.PlainKey(plainOf["config"]))
		require.NoError(t, err)
		defer func() { _ = body.Close() }()
		tr := tar.NewReader(body)
		got := map[string]string{}
		for {
			hdr, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			require.NoError(t, err)
			b, err := io.ReadAll(tr)
			require.NoError(t, err)
			got[hdr.Name] = string(b)
		}
		require.Equal(t, "FORLOCK_DB_PASSWORD=test\n", got["compose/.env"])
		require.Contains(t, got, "compose/docker-compose.yml")
		require.NotContains(t, got, "compose/backups/old.tar.gz", "the backups directory is not configuration")
		require.Contains(t, got, "nginx/nginx.conf")
		require.Contains(t, got["nginx/nginx.conf"], "server")
	})

	// Change and delete rows and Redis keys.
	n.psql(t, "DELETE FROM vault_items WHERE id % 3 = 0; UPDATE vault_items SET name = 'changed' WHERE id % 5 = 0")
	require.NoError(t, rc.Set(ctx, "session:alice", "after-backup", 0).Err())
	require.NoError(t, rc.Set(ctx, "session:mallory", "new", 0).Err())
	changed := n.summary(t)
	require.NotEqual(t, want, changed)
	started := n.apiStartedAt(t)

	restoreKeys := func(plain map[string][]byte) []*forlockv1.TaskKey {
		var out []*forlockv1.TaskKey
		for id, a := range byID {
			out = append(out, &forlockv1.TaskKey{Name: id, KeyId: a.GetKeyId(), WrappedKey: a.GetWrappedKey(),
				PlainKey: bytes.Clone(plain[kindName(a.GetKind())])})
		}
		return out
	}
	pg := byID["rp1-postgres"]

	t.Run("refused before anything is stopped", func(t *testing.T) {
		flipped := filepath.Join(root, n.name, "flipped.dump.zst.enc")
		raw, err := os.ReadFile(pg.GetLocation())
		require.NoError(t, err)
		raw[len(raw)/2] ^= 0x01
		require.NoError(t, os.WriteFile(flipped, raw, 0o600))
		wrong := map[string][]byte{"postgres": plainOf["redis"], "redis": plainOf["redis"], "config": plainOf["config"]}
		outside := filepath.Join(t.TempDir(), filepath.Base(pg.GetLocation()))
		require.NoError(t, os.WriteFile(outside, raw, 0o600))
		for _, tt := range []struct {
			name  string
			edit  func(a *forlockv1.Artifact)
			plain map[string][]byte
			want  string
		}{
			{"flipped byte", func(a *forlockv1.Artifact) { a.Location = flipped }, plainOf, "checksum mismatch"},
			{"wrong key", func(*forlockv1.Artifact) {}, wrong, "wrong key"},
			{"missing file", func(a *forlockv1.Artifact) { a.Location = filepath.Join(root, n.name, "gone.dump.zst.enc") }, plainOf, "artifact not found"},
			{"outside the backup dirs", func(a *forlockv1.Artifact) { a.Location = outside }, plainOf, "outside the agent's allowed backup directories"},
		} {
			t.Run(tt.name, func(t *testing.T) {
				a := proto.CloneOf(pg)
				tt.edit(a)
				arts := []*forlockv1.Artifact{a, byID["rp1-redis"], byID["rp1-config"]}
				_, err := rh.Run(ctx, assignment(restoreSpec(arts...), restoreKeys(tt.plain)...), func(*forlockv1.Progress) {})
				require.ErrorContains(t, err, tt.want)
				require.ErrorContains(t, err, "nothing was stopped or changed")
				require.Equal(t, started, n.apiStartedAt(t), "the API was never stopped")
				require.Equal(t, changed, n.summary(t), "no row changed")
				v, err := rc.Get(ctx, "session:alice").Result()
				require.NoError(t, err)
				require.Equal(t, "after-backup", v)
			})
		}
	})

	t.Run("restore", func(t *testing.T) {
		var prog progressLog
		arts := []*forlockv1.Artifact{byID["rp1-config"], byID["rp1-redis"], pg}
		res, err := rh.Run(ctx, assignment(restoreSpec(arts...), restoreKeys(plainOf)...), prog.report)
		require.NoError(t, err)
		require.Equal(t, want, n.summary(t), "every row as at the backup")
		v, err := rc.Get(ctx, "session:alice").Result()
		require.NoError(t, err)
		require.Equal(t, "before-backup", v, "the Redis key is back")
		require.ErrorIs(t, rc.Get(ctx, "session:mallory").Err(), redis.Nil, "a key set after the backup is gone")
		require.Contains(t, res.Message, "restored postgres and redis; the API is healthy; config verified, not applied: "+byID["rp1-config"].GetLocation())
		require.Len(t, res.Details, 3)
		require.Contains(t, res.Details[0], "postgres: restored "+pg.GetFileName())
		require.Contains(t, res.Details[1], "redis: restored ")
		require.Contains(t, res.Details[1], "into /data/dump.rdb")
		require.NotEqual(t, started, n.apiStartedAt(t), "the API was stopped and started")
		st, err := n.rt.State(ctx, "api")
		require.NoError(t, err)
		require.Equal(t, dockerrt.State{Name: n.name + "-api", Status: "running", Health: "healthy"}, st)
		require.Subset(t, prog.phases(), []string{"verify postgres (1/3)", "verify redis (2/3)", "verify config (3/3)", "stop api", "restore postgres", "stop redis", "restore redis", "start api"})
		owner := n.sh(t, "exec", "-u", "root", n.name+"-redis", "stat", "-c", "%U", "/data/dump.rdb")
		require.Equal(t, "redis", owner)
	})

	t.Run("destination full", func(t *testing.T) {
		full := filepath.Join(root, "full")
		require.NoError(t, os.MkdirAll(full, 0o700))
		testenv.RequireTmpfs(t, full, "1m")
		_, err := bh.Run(ctx, assignment(backupSpec(&forlockv1.BackupDestination{Kind: &forlockv1.BackupDestination_Dir{Dir: full}}), backupKeysFor(t, k)...), func(*forlockv1.Progress) {})
		require.ErrorContains(t, err, "destination full: postgres artifact: backup destination full: no space left for "+full+"/postgres_")
		require.Empty(t, files(t, full), "the partial file is removed")
	})

	t.Run("cancelled mid-backup removes what it wrote", func(t *testing.T) {
		dest := filepath.Join(root, "cancel")
		cctx, cancel := context.WithCancel(ctx)
		defer cancel()
		prog := progressLog{on: func(p *forlockv1.Progress) {
			if strings.HasPrefix(p.GetPhase(), "backup redis") {
				cancel()
			}
		}}
		_, err := bh.Run(cctx, assignment(backupSpec(&forlockv1.BackupDestination{Kind: &forlockv1.BackupDestination_Dir{Dir: dest}}), backupKeysFor(t, k)...), prog.report)
		require.ErrorIs(t, err, context.Canceled)
		require.Contains(t, prog.phases(), "backup redis (2/3)", "the postgres artifact was written first")
		require.Empty(t, files(t, dest), "the postgres artifact and the partial one are removed")
	})
}

// TestBackupAndRestoreOverS3 backs a node up to a bucket, changes it,
// restores from the bucket, and reports a stopped server clearly.
func TestBackupAndRestoreOverS3(t *testing.T) {
	endpoint, stopS3 := s3Server(t, "fleet-backups")
	n := startNode(t)
	ctx := testCtx(t)
	n.sh(t, "exec", n.name+"-api", "forlockapi", "load", "--mb", "2")
	rc := redis.NewClient(&redis.Options{Addr: n.redisAddr})
	defer func() { _ = rc.Close() }()
	require.NoError(t, rc.Set(ctx, "session:bob", "at-backup", 0).Err())
	want := n.summary(t)

	cfg := nodeConfig(n, t.TempDir())
	cfg.ComposeDir = composeDir(t)
	cfg.S3 = s3Config(endpoint)
	bh, err := NewHandler(cfg)
	require.NoError(t, err)
	rh, err := NewRestoreHandler(cfg)
	require.NoError(t, err)
	k := kek(t)
	bkeys := backupKeysFor(t, k)
	dest := &forlockv1.BackupDestination{Kind: &forlockv1.BackupDestination_S3{S3: &forlockv1.S3Location{Bucket: "fleet-backups", Prefix: "forlock/"}}}
	res, err := bh.Run(ctx, assignment(backupSpec(dest), bkeys...), func(*forlockv1.Progress) {})
	require.NoError(t, err)
	require.Len(t, res.Artifacts, 3)
	var keys []*forlockv1.TaskKey
	for i, a := range res.Artifacts {
		require.Equal(t, "s3://fleet-backups/forlock/"+n.name+"/"+a.GetFileName(), a.GetLocation())
		a.Id = "rp-s3-" + kindName(a.GetKind())
		keys = append(keys, &forlockv1.TaskKey{Name: a.GetId(), KeyId: a.GetKeyId(), WrappedKey: a.GetWrappedKey(), PlainKey: bkeys[i].GetPlainKey()})
	}

	n.psql(t, "DELETE FROM vault_items WHERE id % 2 = 0")
	require.NoError(t, rc.Del(ctx, "session:bob").Err())
	require.NotEqual(t, want, n.summary(t))
	_, err = rh.Run(ctx, assignment(restoreSpec(res.Artifacts...), keys...), func(*forlockv1.Progress) {})
	require.NoError(t, err)
	require.Equal(t, want, n.summary(t), "every row and session as at the backup")
	require.Equal(t, "at-backup", rc.Get(ctx, "session:bob").Val())

	stopS3()
	started := n.apiStartedAt(t)
	_, err = rh.Run(ctx, assignment(restoreSpec(res.Artifacts...), keys...), func(*forlockv1.Progress) {})
	require.ErrorContains(t, err, "S3 server "+endpoint+" unreachable")
	require.ErrorContains(t, err, "nothing was stopped or changed")
	require.Equal(t, started, n.apiStartedAt(t))
	_, err = bh.Run(ctx, assignment(backupSpec(dest), backupKeysFor(t, k)...), func(*forlockv1.Progress) {})
	require.ErrorContains(t, err, "destination: S3 server "+endpoint+" unreachable")
}

func TestDestinationOutsideBackupDirsIsRefused(t *testing.T) {
	rt, err := dockerrt.New(dockerrt.Config{}) // never contacted
	require.NoError(t, err)
	defer func() { _ = rt.Close() }()
	allowed, other := t.TempDir(), t.TempDir()
	require.NoError(t, os.Symlink(other, filepath.Join(allowed, "escape")))
	h, err := NewHandler(Config{Node: func() string { return "node-1" }, Docker: rt, BackupDirs: []string{allowed}})
	require.NoError(t, err)
	k := kek(t)
	for _, tt := range []struct{ dir, want string }{
		{other, "destination: backup directory " + other + " is outside the agent's allowed backup directories (" + allowed + "): choose a directory inside one of them"},
		{filepath.Join(allowed, "escape", "x"), "is outside the agent's allowed backup directories"},
		{allowed + "/../x", "give an absolute, clean path"},
		{"relative", "give an absolute, clean path"},
	} {
		t.Run(tt.dir, func(t *testing.T) {
			spec := backupSpec(&forlockv1.BackupDestination{Kind: &forlockv1.BackupDestination_Dir{Dir: tt.dir}})
			_, err := h.Run(context.Background(), assignment(spec, backupKeysFor(t, k)...), func(*forlockv1.Progress) {})
			require.ErrorContains(t, err, tt.want)
		})
	}
	require.Empty(t, files(t, other))

	// No key for a kind, or no S3 server: refused before anything runs.
	_, err = h.Run(context.Background(), assignment(backupSpec(nil), taskKey(t, k, "postgres")), func(*forlockv1.Progress) {})
	require.EqualError(t, err, "the task carries no data key for the redis artifact: the control plane must send one per artifact")
	spec := backupSpec(&forlockv1.BackupDestination{Kind: &forlockv1.BackupDestination_S3{S3: &forlockv1.S3Location{Bucket: "b"}}}, forlockv1.ArtifactKind_ARTIFACT_KIND_CONFIG)
	_, err = h.Run(context.Background(), assignment(spec, taskKey(t, k, "config")), func(*forlockv1.Progress) {})
	require.ErrorContains(t, err, "destination: no S3 server is configured on this agent: set s3_endpoint")
	require.True(t, slices.Equal([]string{allowed}, h.c.cfg.BackupDirs))
}
