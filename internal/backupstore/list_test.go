package backupstore

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/minio/minio-go/v7"
	"github.com/stretchr/testify/require"
)

// lister is what List tests need of a store.
type lister interface {
	Store
	List(ctx context.Context, dir string) ([]string, error)
}

// checkList puts artifacts at the top and in a sub-folder and checks that
// List returns the top ones, sorted, and nothing else.
func checkList(t *testing.T, s lister) {
	t.Helper()
	ctx := context.Background()
	names, err := s.List(ctx, "")
	require.NoError(t, err)
	require.Empty(t, names, "an empty store lists nothing")
	for _, n := range []string{"controlplane-2.snap", "controlplane-1.snap", "node-1/postgres.dump"} {
		_, err := s.Put(ctx, n, strings.NewReader(n))
		require.NoError(t, err)
	}
	names, err = s.List(ctx, "")
	require.NoError(t, err)
	require.Equal(t, []string{"controlplane-1.snap", "controlplane-2.snap"}, names)
	require.NoError(t, s.Delete(ctx, "controlplane-1.snap"))
	names, err = s.List(ctx, "")
	require.NoError(t, err)
	require.Equal(t, []string{"controlplane-2.snap"}, names)
}

func TestDirList(t *testing.T) {
	d, root := newTestDir(t)
	checkList(t, d)
	// A Put in progress leaves a temporary file: not an artifact.
	require.NoError(t, os.WriteFile(filepath.Join(root, ".controlplane-3.snap.tmp-1"), nil, 0o600))
	names, err := d.List(context.Background(), "")
	require.NoError(t, err)
	require.Equal(t, []string{"controlplane-2.snap"}, names)
}

func TestS3List(t *testing.T) {
	s := newTestS3(t, "snapshots")
	// An object beside the prefix is not the store's.
	_, err := s.client.PutObject(context.Background(), s.cfg.Bucket, "snapshots-other", strings.NewReader("x"), 1, minio.PutObjectOptions{})
	require.NoError(t, err)
	checkList(t, s)
}

func TestS3ListNoBucket(t *testing.T) {
	s := newTestS3(t, "")
	cfg := s.cfg
	cfg.Bucket = "no-such-bucket"
	other, err := NewS3(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = other.Close() })
	_, err = other.List(context.Background(), "")
	require.ErrorContains(t, err, `S3 bucket "no-such-bucket" does not exist`)
}
