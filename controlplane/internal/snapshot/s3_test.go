package snapshot

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/stretchr/testify/require"

	"github.com/forlock/fleet/test/testenv"
)

// S3 credentials of the test server this file starts.
const (
	testAccessKey = "snapshot-test"
	testSecretKey = "snapshot-test-secret"
)

// startS3 starts the S3 test server (deploy/s3/start.sh) for t, stopped at
// cleanup, with a bucket "snapshots", and returns its endpoint.
func startS3(t *testing.T) string {
	t.Helper()
	testenv.RequireServerBinary(t, "s3")
	scripts, err := filepath.Abs(filepath.Join("..", "..", "..", "deploy", "s3"))
	require.NoError(t, err)
	dir := t.TempDir()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := l.Addr().(*net.TCPAddr).Port
	require.NoError(t, l.Close())
	cmd := exec.Command(filepath.Join(scripts, "start.sh"), dir, fmt.Sprint(port))
	cmd.Env = append(os.Environ(), "FORLOCK_S3_ACCESS_KEY="+testAccessKey, "FORLOCK_S3_SECRET_KEY="+testSecretKey)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "start the S3 test server: %s", stderr.String())
	t.Cleanup(func() { _ = exec.Command(filepath.Join(scripts, "stop.sh"), dir).Run() })
	endpoint := strings.TrimSpace(string(out))
	mc, err := minio.New(endpoint, &minio.Options{Creds: credentials.NewStaticV4(testAccessKey, testSecretKey, "")})
	require.NoError(t, err)
	require.NoError(t, mc.MakeBucket(context.Background(), "snapshots", minio.MakeBucketOptions{}))
	return endpoint
}

// TestScheduledSnapshotsToS3: each scheduled save is an object named by its
// UTC time under the prefix, the keys read from 0600 files; beyond keep the
// oldest go and other objects stay; the newest restores. Wrong keys, a
// missing bucket and a key file others can read fail, saying so.
func TestScheduledSnapshotsToS3(t *testing.T) {
	endpoint := startS3(t)
	src := dataDir(t)
	at := time.Date(2026, 12, 3, 1, 30, 0, 0, time.UTC)
	s, err := NewSaver(Config{DataDir: src, DB: fakeDB("db on s3"), Name: "controlplane", Now: func() time.Time { return at }})
	require.NoError(t, err)
	dir := t.TempDir()
	passFile, akFile, skFile := filepath.Join(dir, "pass"), filepath.Join(dir, "ak"), filepath.Join(dir, "sk")
	require.NoError(t, os.WriteFile(passFile, []byte(pass+"\n"), 0o600))
	require.NoError(t, os.WriteFile(akFile, []byte(testAccessKey+"\n"), 0o600))
	require.NoError(t, os.WriteFile(skFile, []byte(testSecretKey+"\n"), 0o600))
	sched := Schedule{Cron: "@daily", Keep: 2, PassphraseFile: passFile,
		S3: S3{Endpoint: endpoint, Bucket: "snapshots", Prefix: "cp", AccessKeyFile: akFile, SecretKeyFile: skFile}}
	require.NoError(t, sched.Check())
	mc, err := minio.New(endpoint, &minio.Options{Creds: credentials.NewStaticV4(testAccessKey, testSecretKey, "")})
	require.NoError(t, err)
	ctx := t.Context()
	_, err = mc.PutObject(ctx, "snapshots", "cp/notes.txt", strings.NewReader("mine"), 4, minio.PutObjectOptions{})
	require.NoError(t, err)

	var where []string
	for range 3 {
		w, _, err := s.SaveScheduled(ctx, sched)
		require.NoError(t, err)
		where = append(where, w)
		at = at.Add(24 * time.Hour)
	}
	require.Equal(t, "s3://snapshots/cp/controlplane-20261203T013000Z.snap", where[0])
	var keys []string
	for obj := range mc.ListObjects(ctx, "snapshots", minio.ListObjectsOptions{Recursive: true}) {
		require.NoError(t, obj.Err)
		keys = append(keys, obj.Key)
	}
	require.Equal(t, []string{"cp/controlplane-20261204T013000Z.snap", "cp/controlplane-20261205T013000Z.snap", "cp/notes.txt"}, keys)

	newest := filepath.Join(t.TempDir(), "newest.snap")
	require.NoError(t, mc.FGetObject(ctx, "snapshots", "cp/controlplane-20261205T013000Z.snap", newest, minio.GetObjectOptions{}))
	target := filepath.Join(t.TempDir(), "restored")
	r, err := Restore(ctx, opts(t, newest, target, pass))
	require.NoError(t, err)
	require.Equal(t, time.Date(2026, 12, 5, 1, 30, 0, 0, time.UTC), r.Manifest.TakenAt)
	db, err := os.ReadFile(filepath.Join(target, DBName))
	require.NoError(t, err)
	require.Equal(t, "db on s3", string(db))

	wrongKey := filepath.Join(dir, "wrong")
	require.NoError(t, os.WriteFile(wrongKey, []byte("not-the-secret"), 0o600))
	openKey := filepath.Join(dir, "open")
	require.NoError(t, os.WriteFile(openKey, []byte(testSecretKey), 0o644))
	for name, tc := range map[string]struct {
		mod  func(*Schedule)
		want string
	}{
		"wrong secret key": {func(s *Schedule) { s.S3.SecretKeyFile = wrongKey }, "refused access"},
		"no such bucket":   {func(s *Schedule) { s.S3.Bucket = "no-such-bucket" }, `S3 bucket "no-such-bucket" does not exist`},
		"key file open":    {func(s *Schedule) { s.S3.SecretKeyFile = openKey }, "has mode 0644"},
	} {
		t.Run(name, func(t *testing.T) {
			bad := sched
			tc.mod(&bad)
			_, _, err := s.SaveScheduled(ctx, bad)
			require.ErrorContains(t, err, tc.want)
		})
	}
	n := 0
	for obj := range mc.ListObjects(ctx, "snapshots", minio.ListObjectsOptions{Recursive: true}) {
		require.NoError(t, obj.Err)
		n++
	}
	require.Equal(t, 3, n, "the failed saves left nothing")

	for _, bad := range []Schedule{
		{Cron: "@daily", Keep: 1, PassphraseFile: passFile, Dir: "/x", S3: sched.S3},
		{Cron: "@daily", Keep: 1, PassphraseFile: passFile, S3: S3{Endpoint: endpoint, Bucket: "snapshots"}},
		{Cron: "@daily", Keep: 1, PassphraseFile: passFile, S3: S3{Bucket: "snapshots", AccessKey: "a", SecretKey: "s"}},
		{Cron: "@daily", Keep: 1, PassphraseFile: passFile, S3: S3{Endpoint: endpoint, Bucket: "Bad_Bucket", AccessKey: "a", SecretKey: "s"}},
		{Cron: "@daily", Keep: 1, PassphraseFile: passFile, S3: S3{Endpoint: endpoint, Bucket: "snapshots", Prefix: "../x", AccessKey: "a", SecretKey: "s"}},
		{Cron: "@daily", Keep: 1, Dir: "/x", S3: S3{Endpoint: endpoint}},
		{Cron: "@daily", Keep: 1, Dir: "/x", PassphraseFile: passFile, TransitKey: "k"},
	} {
		require.Error(t, bad.Check(), "%+v", bad)
	}
}
