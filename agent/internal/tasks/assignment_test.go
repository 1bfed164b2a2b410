package tasks

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
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
	var got Assignment
	h := HandlerFunc(func(_ context.Context, a Assignment, _ func(*forlockv1.Progress)) (Result, error) {
		require.Len(t, a.Keys, 1)
		seen = bytes.Clone(a.Keys[0].GetPlainKey())
		got = a
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
	require.Equal(t, "job-b", got.JobID)
	require.Equal(t, "t1", got.TaskID)
	require.Equal(t, protocol.KindBackup, got.Kind())
	require.NotNil(t, got.Spec.GetBackup())

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
	h := HandlerFunc(func(_ context.Context, a Assignment, _ func(*forlockv1.Progress)) (Result, error) {
		require.Empty(t, a.Keys)
		require.Nil(t, a.Certificate)
		return Result{Artifacts: []*forlockv1.Artifact{{Sha256: "x"}}}, errors.New("dump postgres: boom")
	})
	f := newFixture(t, "", map[protocol.Kind]Handler{"backup": h})
	f.r.Handle(backupAssign("t1"))
	u := f.out.final(t)
	require.Equal(t, forlockv1.TaskState_TASK_STATE_FAILED, u.GetState())
	require.Equal(t, "dump postgres: boom", u.GetMessage())
	require.Empty(t, u.GetArtifacts())
}

func TestCertificateKeyIsDroppedAfterTheTask(t *testing.T) {
	var seen string
	h := HandlerFunc(func(_ context.Context, a Assignment, _ func(*forlockv1.Progress)) (Result, error) {
		seen = a.Certificate.GetPrivateKeyPem()
		return Result{}, errors.New("nginx -t failed")
	})
	f := newFixture(t, "", map[protocol.Kind]Handler{"health_check": h})
	m := assign("t1")
	pair := &forlockv1.CertificatePair{CertificatePem: "cert", PrivateKeyPem: "the key"}
	m.GetTaskAssignment().Certificate = pair
	f.r.Handle(m)
	require.Equal(t, forlockv1.TaskState_TASK_STATE_FAILED, f.out.final(t).GetState())
	require.Equal(t, "the key", seen, "the handler got the private key")
	require.Empty(t, pair.GetPrivateKeyPem(), "the runner dropped the private key after the task")
	require.Equal(t, "cert", pair.GetCertificatePem(), "the public part stays")
}

func TestAssignmentHidesSecrets(t *testing.T) {
	plain := []byte("0123456789abcdef0123456789ABCDEF")
	a := Assignment{JobID: "job-7", TaskID: "task-7",
		Spec:        &forlockv1.JobSpec{Kind: &forlockv1.JobSpec_Backup{Backup: &forlockv1.BackupSpec{}}},
		Keys:        []*forlockv1.TaskKey{{Name: "postgres", KeyId: "local:1", PlainKey: plain}},
		Certificate: &forlockv1.CertificatePair{CertificatePem: "-----BEGIN CERTIFICATE-----", PrivateKeyPem: "-----BEGIN EC PRIVATE KEY-----\nc2VjcmV0\n"},
	}
	var out []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%d"} {
		out = append(out, fmt.Sprintf(verb, a), fmt.Sprintf(verb, &a), fmt.Sprintf(verb, struct{ A Assignment }{a}))
	}
	var logs bytes.Buffer
	for _, lh := range []slog.Handler{slog.NewJSONHandler(&logs, nil), slog.NewTextHandler(&logs, nil)} {
		slog.New(lh).Info("run", "assignment", a, "ptr", &a, "nested", struct{ A Assignment }{a})
		out = append(out, logs.String())
		logs.Reset()
	}
	b, err := json.Marshal(struct{ A *Assignment }{&a})
	require.NoError(t, err)
	out = append(out, string(b))

	secrets := []string{string(plain), hex.EncodeToString(plain), base64.StdEncoding.EncodeToString(plain),
		"[48 49 50 51 52", "c2VjcmV0", "PRIVATE", "CERTIFICATE"} // [48 49 ...]: the key as fmt prints bytes
	for _, s := range out {
		// The positive twin: the output is the assignment's, with what
		// may be shown.
		require.Contains(t, s, "job-7", s)
		require.Contains(t, s, "task-7", s)
		require.Contains(t, s, "backup", s)
		require.Contains(t, s, "postgres", s)
		for _, secret := range secrets {
			require.NotContains(t, s, secret)
		}
	}
	// And the check can fail: the proto messages themselves show them.
	require.Contains(t, fmt.Sprint(a.Keys), "0123456789abcdef")
	require.Contains(t, fmt.Sprint(a.Certificate), "PRIVATE")
}
