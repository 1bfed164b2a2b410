package tasks

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/forlock/fleet/agent/internal/journal"
	"github.com/forlock/fleet/internal/protocol"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

func backupAssign(id string, keys ...*forlockv1.TaskKey) *forlockv1.ConnectResponse {
	return &forlockv1.ConnectResponse{Msg: &forlockv1.ConnectResponse_TaskAssignment{TaskAssignment: &forlockv1.TaskAssignment{
		TaskId: id, JobId: "job-b", Keys: keys,
		Spec: &forlockv1.JobSpec{Kind: &forlockv1.JobSpec_Backup{Backup: &forlockv1.BackupSpec{}}},
	}}}
}

func TestKeysReachTheHandlerAndArtifactsTravelWithTheEnd(t *testing.T) {
	plain := bytes.Repeat([]byte{0xA7}, 32)
	key := &forlockv1.TaskKey{Name: "postgres", KeyId: "local:1", WrappedKey: []byte("wrapped"), PlainKey: plain}
	art := &forlockv1.Artifact{Kind: forlockv1.ArtifactKind_ARTIFACT_KIND_POSTGRES, Sha256: "ab", Location: "/x/postgres.dump.zst.enc",
		KeyId: "local:1", WrappedKey: []byte("wrapped"), SizeBytes: 10}
	var seen []byte
	h := HandlerFunc(func(ctx context.Context, _ *forlockv1.JobSpec, _ func(*forlockv1.Progress)) (Result, error) {
		keys := KeysFrom(ctx)
		require.Len(t, keys, 1)
		seen = bytes.Clone(keys[0].GetPlainKey())
		return Result{Message: "1 artifact", Artifacts: []*forlockv1.Artifact{art}}, nil
	})
	dir := t.TempDir()
	f := newFixture(t, dir, map[protocol.Kind]Handler{"backup": h})
	f.r.Handle(backupAssign("t1", key))
	u := f.out.final(t)
	require.Equal(t, forlockv1.TaskState_TASK_STATE_SUCCEEDED, u.GetState())
	require.Len(t, u.GetArtifacts(), 1)
	require.True(t, proto.Equal(art, u.GetArtifacts()[0]))
	require.Equal(t, bytes.Repeat([]byte{0xA7}, 32), seen, "the handler got the plain key")
	require.Equal(t, make([]byte, 32), plain, "the runner wiped the plain key after the task")

	f.stop()
	raw, err := os.ReadFile(filepath.Join(dir, journal.FileName))
	require.NoError(t, err)
	require.False(t, bytes.Contains(raw, bytes.Repeat([]byte{0xA7}, 32)), "no plain key in the journal")

	// A restart: the re-sent end still carries the artifacts.
	f2 := newFixture(t, dir, nil)
	f2.r.Handle(backupAssign("t1"))
	u = f2.out.next(t)
	require.Equal(t, forlockv1.TaskState_TASK_STATE_SUCCEEDED, u.GetState())
	require.Len(t, u.GetArtifacts(), 1)
	require.True(t, proto.Equal(art, u.GetArtifacts()[0]))
}

func TestFailedTaskReportsNoArtifacts(t *testing.T) {
	h := HandlerFunc(func(ctx context.Context, _ *forlockv1.JobSpec, _ func(*forlockv1.Progress)) (Result, error) {
		require.Empty(t, KeysFrom(ctx))
		return Result{Artifacts: []*forlockv1.Artifact{{Sha256: "x"}}}, errors.New("dump postgres: boom")
	})
	f := newFixture(t, "", map[protocol.Kind]Handler{"backup": h})
	f.r.Handle(backupAssign("t1"))
	u := f.out.final(t)
	require.Equal(t, forlockv1.TaskState_TASK_STATE_FAILED, u.GetState())
	require.Equal(t, "dump postgres: boom", u.GetMessage())
	require.Empty(t, u.GetArtifacts())
}
