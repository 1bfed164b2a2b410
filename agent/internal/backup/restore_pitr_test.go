package backup

import (
	"bytes"
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/forlock/fleet/agent/internal/walarchive"
	"github.com/forlock/fleet/internal/artifact"
	"github.com/forlock/fleet/internal/keys"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// archiveWAL writes one stored WAL file as the archiver does.
func archiveWAL(t *testing.T, root, node string, k *keys.File, name string, body []byte) string {
	t.Helper()
	dk, err := keys.NewDataKey()
	require.NoError(t, err)
	wrapped, err := k.Wrap(context.Background(), dk)
	require.NoError(t, err)
	var buf bytes.Buffer
	aw, err := artifact.NewWriter(&buf, artifact.Header{Kind: artifact.KindWal, Node: "n", Created: time.Now(), KeyID: k.KeyID(), WrappedKey: wrapped, FileName: name}, dk)
	require.NoError(t, err)
	_, err = aw.Write(body)
	require.NoError(t, err)
	require.NoError(t, aw.Close())
	p := filepath.Join(root, "wal", node, "00000001", name+".zst.enc")
	require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o700))
	require.NoError(t, os.WriteFile(p, buf.Bytes(), 0o600))
	return p
}

func newKey(t *testing.T, id string) (*keys.File, *forlockv1.TaskKey) {
	t.Helper()
	raw := make([]byte, 32)
	_, _ = rand.Read(raw)
	f, err := keys.NewNamed(id, raw)
	require.NoError(t, err)
	return f, &forlockv1.TaskKey{Name: "archive", KeyId: id, PlainKey: raw}
}

// TestPlanPITR: every segment from the base's start to the WAL's end is
// found before anything happens; the last may be only partial; a missing,
// renamed or foreign-keyed file is refused naming the segment; staging
// decrypts every byte and refuses a segment that does not decrypt or is not
// whole (damage, not the end of the WAL).
func TestPlanPITR(t *testing.T) {
	root := t.TempDir()
	h, err := NewRestoreHandler(Config{Node: func() string { return "n" }, BackupDirs: []string{root}})
	require.NoError(t, err)
	c := h.c
	k, tk := newKey(t, "archive:n:1")
	whole := make([]byte, walarchive.SegmentSize)
	copy(whole, "segment three")
	seg3 := archiveWAL(t, root, "node-1", k, "000000010000000000000003", whole)
	archiveWAL(t, root, "node-1", k, "000000010000000000000004.partial", []byte("partial four"))

	base := &item{physical: true, art: &forlockv1.Artifact{Id: "b1", WalStartLsn: "0/3000028", Timeline: 1}}
	at := time.Date(2026, 12, 3, 19, 0, 1, 500000000, time.UTC)
	spec := func() *forlockv1.RestoreSpec {
		return &forlockv1.RestoreSpec{Artifacts: []*forlockv1.Artifact{base.art}, ToTime: timestamppb.New(at),
			Wal: []*forlockv1.WalRange{{NodeId: "node-1", Timeline: 1, StartLsn: "0/3000000", EndLsn: "0/4000100",
				Destination: &forlockv1.BackupDestination{Kind: &forlockv1.BackupDestination_Dir{Dir: root}}}}}
	}
	p := startProgress(func(*forlockv1.Progress) {})
	defer p.stop()
	ctx := context.Background()

	pl, err := c.planPITR(ctx, spec(), base, []*forlockv1.TaskKey{tk}, p)
	require.NoError(t, err)
	require.Len(t, pl.files, 2)
	require.Equal(t, "000000010000000000000003", pl.files[0].stored.Name())
	require.Equal(t, "000000010000000000000004.partial", pl.files[1].stored.Name())
	conf := pl.recoveryConf("/var/lib/postgresql/data")
	require.Contains(t, conf, `restore_command = 'cp "/var/lib/postgresql/data/forlock-wal/%f" "%p"'`)
	require.Contains(t, conf, "recovery_target_time = '2026-12-03 19:00:01.500000+00'")
	require.Contains(t, conf, "recovery_target_inclusive = on")
	require.Contains(t, conf, "recovery_target_timeline = '1'")

	var tarBuf bytes.Buffer
	var n counter
	require.NoError(t, pl.writeTar(ctx, &tarBuf, 999, 999, &n))
	require.Equal(t, int64(2*walarchive.SegmentSize), n.load(), "each segment padded to its full size")

	t.Run("to the latest, the WAL shipped after the last report is found", func(t *testing.T) {
		// The control plane knew the WAL up to the end of segment 3; the
		// archive holds segment 4's partial too (shipped after the last
		// report of an agent now gone): a restore to the latest replays it.
		s := spec()
		s.ToTime, s.ToLatest = nil, true
		s.Wal[0].EndLsn = "0/4000000"
		pl, err := c.planPITR(ctx, s, base, []*forlockv1.TaskKey{tk}, p)
		require.NoError(t, err)
		require.Len(t, pl.files, 2)
		require.Equal(t, "000000010000000000000004.partial", pl.files[1].stored.Name())
		s.ToTime, s.ToLatest = timestamppb.New(at), false
		pl, err = c.planPITR(ctx, s, base, []*forlockv1.TaskKey{tk}, p)
		require.NoError(t, err)
		require.Len(t, pl.files, 1, "to a time: the control plane's ranges, no more")
	})
	t.Run("staging refuses a damaged segment", func(t *testing.T) {
		data, err := os.ReadFile(seg3)
		require.NoError(t, err)
		defer func() { require.NoError(t, os.WriteFile(seg3, data, 0o600)) }()
		flipped := append([]byte(nil), data...)
		flipped[len(flipped)-100] ^= 1
		require.NoError(t, os.WriteFile(seg3, flipped, 0o600))
		pl, err := c.planPITR(ctx, spec(), base, []*forlockv1.TaskKey{tk}, p)
		require.NoError(t, err, "the header is intact")
		err = pl.writeTar(ctx, &bytes.Buffer{}, 999, 999, &counter{})
		require.ErrorContains(t, err, "WAL segment 000000010000000000000003")
		require.ErrorIs(t, err, artifact.ErrCorrupted)

		archiveWAL(t, root, "node-1", k, "000000010000000000000003", []byte("segment three"))
		pl, err = c.planPITR(ctx, spec(), base, []*forlockv1.TaskKey{tk}, p)
		require.NoError(t, err)
		err = pl.writeTar(ctx, &bytes.Buffer{}, 999, 999, &counter{})
		require.ErrorContains(t, err, "13 bytes, not a whole segment")
	})

	t.Run("a key the task does not carry", func(t *testing.T) {
		_, other := newKey(t, "archive:n:2")
		_, err := c.planPITR(ctx, spec(), base, []*forlockv1.TaskKey{other}, p)
		require.ErrorContains(t, err, "WAL segment 000000010000000000000003")
		require.ErrorIs(t, err, keys.ErrUnknownKey)
	})
	t.Run("a file renamed to another segment", func(t *testing.T) {
		data, err := os.ReadFile(seg3)
		require.NoError(t, err)
		p5 := filepath.Join(filepath.Dir(seg3), "000000010000000000000004.zst.enc")
		require.NoError(t, os.WriteFile(p5, data, 0o600))
		defer func() { _ = os.Remove(p5) }()
		_, err = c.planPITR(ctx, spec(), base, []*forlockv1.TaskKey{tk}, p)
		require.ErrorContains(t, err, "WAL segment 000000010000000000000004")
		require.ErrorIs(t, err, artifact.ErrCorrupted)
	})
	t.Run("a missing segment", func(t *testing.T) {
		require.NoError(t, os.Remove(seg3))
		_, err := c.planPITR(ctx, spec(), base, []*forlockv1.TaskKey{tk}, p)
		require.ErrorContains(t, err, "WAL segment 000000010000000000000003")
		require.ErrorIs(t, err, walarchive.ErrMissing)
	})
	t.Run("bad specs", func(t *testing.T) {
		s := spec()
		s.Wal[0].NodeId = "../x"
		_, err := c.planPITR(ctx, s, base, []*forlockv1.TaskKey{tk}, p)
		require.ErrorContains(t, err, "want one node's WAL")
		s = spec()
		s.Wal[0].Timeline = 2
		_, err = c.planPITR(ctx, s, base, []*forlockv1.TaskKey{tk}, p)
		require.ErrorContains(t, err, "timeline 2")
		s = spec()
		s.Wal[0].Destination = &forlockv1.BackupDestination{Kind: &forlockv1.BackupDestination_Dir{Dir: "/etc"}}
		_, err = c.planPITR(ctx, s, base, []*forlockv1.TaskKey{tk}, p)
		require.ErrorIs(t, err, ErrNotAllowed)
		_, err = c.planPITR(ctx, spec(), base, nil, p)
		require.ErrorContains(t, err, "no archive key")
		s = spec()
		s.Wal = append(s.Wal, &forlockv1.WalRange{NodeId: "node-1", Timeline: 1, StartLsn: "0/6000000", EndLsn: "0/7000000", Destination: s.Wal[0].Destination})
		_, err = c.planPITR(ctx, s, base, []*forlockv1.TaskKey{tk}, p)
		require.ErrorContains(t, err, "not contiguous at 0/6000000")
	})
	require.False(t, safeDataDir.MatchString("/data/x'; DROP"), "a data dir that would need quoting")
	require.True(t, strings.HasPrefix(conf, "\n"))
}
