package backup

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/forlock/fleet/agent/internal/dockerrt"
	"github.com/forlock/fleet/internal/artifact"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// liveState is what must not change in a drill: each live container's ID
// and start time.
func liveState(t *testing.T, n testNode) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, svc := range []string{"api", "postgres", "redis", "nginx"} {
		s := n.sh(t, "inspect", "-f", "{{.Id}} {{.State.StartedAt}} {{.State.Running}}", n.name+"-"+svc)
		out[svc] = strings.TrimSpace(s)
	}
	return out
}

// scratchLeft lists containers labelled as drills beside the node.
func scratchLeft(t *testing.T, n testNode) []string {
	t.Helper()
	cli, err := client.New(client.FromEnv)
	require.NoError(t, err)
	defer func() { _ = cli.Close() }()
	var names []string
	for _, svc := range []string{"postgres", "redis"} {
		list, err := cli.ContainerList(context.Background(), client.ContainerListOptions{All: true,
			Filters: make(client.Filters).Add("label", dockerrt.ScratchLabel+"="+n.name+"-"+svc)})
		require.NoError(t, err)
		for _, c := range list.Items {
			names = append(names, c.Names...)
		}
	}
	return names
}

func verifySpec(arts ...*forlockv1.Artifact) *forlockv1.JobSpec {
	return &forlockv1.JobSpec{Kind: &forlockv1.JobSpec_VerifyBackup{VerifyBackup: &forlockv1.VerifyBackupSpec{Artifacts: arts}}}
}

// TestDrill backs up a real node, then drills the restore point: it passes
// with the recorded counts (a Redis key that expired since the backup
// included), a dump that decrypts and checksums but is not a dump fails
// with pg_restore's reason, a scratch container a crashed drill left is
// removed, no scratch container outlives a drill, and the live containers
// keep their IDs and start times throughout.
func TestDrill(t *testing.T) {
	n := startNode(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute) // three drills on a shared host
	defer cancel()
	n.sh(t, "exec", n.name+"-api", "forlockapi", "load", "--mb", "2")
	rc := redis.NewClient(&redis.Options{Addr: n.redisAddr})
	defer func() { _ = rc.Close() }()
	rc2 := redis.NewClient(&redis.Options{Addr: n.redisAddr, DB: 2})
	defer func() { _ = rc2.Close() }()
	for i := range 25 {
		require.NoError(t, rc2.Set(ctx, "db2:"+strings.Repeat("k", i+1), i, 0).Err())
	}

	root := t.TempDir()
	cfg := nodeConfig(n, root)
	cfg.ComposeDir = composeDir(t)
	cfg.DrillMemory = 512 << 20
	cfg.DrillStartTimeout = 5 * time.Minute
	bh, err := NewHandler(cfg)
	require.NoError(t, err)
	dh, err := NewDrillHandler(cfg)
	require.NoError(t, err)
	k := kek(t)
	bkeys := backupKeysFor(t, k)
	res, err := bh.Run(ctx, assignment(backupSpec(nil, forlockv1.ArtifactKind_ARTIFACT_KIND_POSTGRES, forlockv1.ArtifactKind_ARTIFACT_KIND_CONFIG),
		bkeys[0], bkeys[2]), func(*forlockv1.Progress) {})
	require.NoError(t, err)
	require.Len(t, res.Artifacts, 2)
	// A key that expires after the Redis backup, before the drill.
	const ttl = 8 * time.Second
	require.NoError(t, rc.Set(ctx, "drill:short", "expires soon", ttl).Err())
	expires := time.Now().Add(ttl)
	wantKeys, err := rc.DBSize(ctx).Result()
	require.NoError(t, err)
	rres, err := bh.Run(ctx, assignment(backupSpec(nil, forlockv1.ArtifactKind_ARTIFACT_KIND_REDIS), bkeys[1]), func(*forlockv1.Progress) {})
	require.NoError(t, err)
	require.Len(t, rres.Artifacts, 1)
	res.Artifacts = []*forlockv1.Artifact{res.Artifacts[0], rres.Artifacts[0], res.Artifacts[1]}

	pgArt, rdArt := res.Artifacts[0], res.Artifacts[1]
	require.True(t, pgArt.GetCountsRecorded())
	tables := map[string]uint64{}
	for _, tc := range pgArt.GetTableCounts() {
		tables[tc.GetTable()] = tc.GetRows()
	}
	require.Positive(t, tables["public.vault_items"], "rows counted in the dump's snapshot")
	require.True(t, rdArt.GetCountsRecorded())
	require.Equal(t, []uint64{uint64(wantKeys), 25}, []uint64{rdArt.GetRedisKeys()[0].GetKeys(), rdArt.GetRedisKeys()[1].GetKeys()}) //nolint:gosec // a count
	require.Equal(t, uint32(2), rdArt.GetRedisKeys()[1].GetDb())

	var dkeys []*forlockv1.TaskKey
	for i, a := range res.Artifacts {
		a.Id = "rp1-" + kindName(a.GetKind())
		a.RestorePointId = "rp1"
		dkeys = append(dkeys, &forlockv1.TaskKey{Name: a.GetId(), KeyId: bkeys[i].GetKeyId(), WrappedKey: bkeys[i].GetWrappedKey(),
			PlainKey: bytes.Clone(bkeys[i].GetPlainKey())})
	}
	before := liveState(t, n)
	time.Sleep(time.Until(expires) + 500*time.Millisecond)
	require.Zero(t, rc.Exists(ctx, "drill:short").Val(), "drill:short has expired on the live node")

	t.Run("a good restore point passes with its counts", func(t *testing.T) {
		// A scratch container a crashed drill left behind.
		left, err := n.rt.StartScratch(ctx, dockerrt.ScratchConfig{Service: "redis", Cmd: []string{"sleep", "600"}})
		require.NoError(t, err)
		require.Len(t, scratchLeft(t, n), 1)

		started := time.Now()
		out, err := dh.Run(ctx, assignment(verifySpec(res.Artifacts...), dkeys...), func(*forlockv1.Progress) {})
		require.NoError(t, err)
		t.Logf("drill of %d artifacts in %s: %s", len(res.Artifacts), time.Since(started), out.Message)
		require.Contains(t, out.Message, "drill passed")
		require.Len(t, out.Artifacts, 3)
		d := out.Artifacts[0].GetDrill()
		require.True(t, d.GetPassed(), d.GetReason())
		require.Empty(t, d.GetReason())
		require.Equal(t, "job-test", d.GetJobId())
		require.Positive(t, d.GetDurationMs())
		got := map[string]*forlockv1.DrillCount{}
		for _, c := range d.GetCounts() {
			got[kindName(c.GetKind())+" "+c.GetName()] = c
			require.Equal(t, c.GetExpected(), c.GetGot(), c.GetName())
		}
		require.Equal(t, tables["public.vault_items"], got["postgres public.vault_items"].GetGot())
		require.Equal(t, uint64(wantKeys), got["redis db0"].GetGot(), "the expired key loaded too") //nolint:gosec // a count
		require.Equal(t, uint64(25), got["redis db2"].GetGot())
		require.Empty(t, scratchLeft(t, n), "no scratch container after the drill, nor the one left before")
		_, err = n.rt.StartScratch(ctx, dockerrt.ScratchConfig{}) // no command
		require.Error(t, err)
		_ = left
	})

	t.Run("an artifact that decrypts but is not a dump fails with the reason", func(t *testing.T) {
		bad := forgeArtifact(t, root, n.name, bkeys[0], "postgres_20261203_000000.dump", []byte("PGDMP but not really a dump\n"))
		bad.Id, bad.RestorePointId, bad.Kind = "rp2-postgres", "rp2", forlockv1.ArtifactKind_ARTIFACT_KIND_POSTGRES
		bad.PostgresFormat = forlockv1.PostgresFormat_POSTGRES_FORMAT_LOGICAL
		bad.TableCounts, bad.CountsRecorded = pgArt.GetTableCounts(), true
		key := &forlockv1.TaskKey{Name: bad.GetId(), PlainKey: bytes.Clone(bkeys[0].GetPlainKey())}
		out, err := dh.Run(ctx, assignment(verifySpec(bad), key), func(*forlockv1.Progress) {})
		require.ErrorContains(t, err, "drill failed: postgres artifact rp2-postgres: pg_restore")
		require.Len(t, out.Artifacts, 1, "a failed drill still reports its result")
		d := out.Artifacts[0].GetDrill()
		require.False(t, d.GetPassed())
		require.Contains(t, d.GetReason(), "pg_restore")
		require.Contains(t, out.Message, "drill failed")
		require.Empty(t, scratchLeft(t, n), "no scratch container after a failed drill")
	})

	t.Run("a dump whose counts differ fails naming the table", func(t *testing.T) {
		wrong := cloneArtifact(pgArt)
		wrong.TableCounts = append([]*forlockv1.TableCount(nil), pgArt.GetTableCounts()...)
		for i, tc := range wrong.TableCounts {
			if tc.GetTable() == "public.vault_items" {
				wrong.TableCounts[i] = &forlockv1.TableCount{Table: tc.GetTable(), Rows: tc.GetRows() + 1}
			}
		}
		out, err := dh.Run(ctx, assignment(verifySpec(wrong), dkeys[0]), func(*forlockv1.Progress) {})
		require.ErrorContains(t, err, "table public.vault_items has")
		require.False(t, out.Artifacts[0].GetDrill().GetPassed())
		require.Empty(t, scratchLeft(t, n))
	})

	require.Equal(t, before, liveState(t, n), "the live containers keep their IDs and start times")
}

func cloneArtifact(a *forlockv1.Artifact) *forlockv1.Artifact {
	return proto.Clone(a).(*forlockv1.Artifact) //nolint:forcetypeassert // Clone keeps the type
}

// forgeArtifact writes plain as an artifact sealed with key, as a backup
// would: it checksums and decrypts, whatever it holds.
func forgeArtifact(t *testing.T, root, node string, key *forlockv1.TaskKey, plainName string, plain []byte) *forlockv1.Artifact {
	t.Helper()
	dir := filepath.Join(root, node)
	require.NoError(t, os.MkdirAll(dir, 0o700))
	p := filepath.Join(dir, plainName+encSuffix)
	var buf bytes.Buffer
	w, err := artifact.NewWriter(&buf, artifact.Header{Kind: artifact.KindPostgres, Node: node, Created: time.Now().UTC(),
		KeyID: key.GetKeyId(), WrappedKey: key.GetWrappedKey(), FileName: plainName}, key.GetPlainKey())
	require.NoError(t, err)
	_, err = w.Write(plain)
	require.NoError(t, err)
	require.NoError(t, w.Close())
	require.NoError(t, os.WriteFile(p, buf.Bytes(), 0o600))
	return &forlockv1.Artifact{Location: p, FileName: filepath.Base(p), Sha256: w.SHA256(), SizeBytes: uint64(buf.Len()), //nolint:gosec // a size
		KeyId: key.GetKeyId(), WrappedKey: key.GetWrappedKey(), PlainBytes: uint64(len(plain))}
}
