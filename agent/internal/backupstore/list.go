package backupstore

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path"
	"strings"

	"github.com/minio/minio-go/v7"
)

// Lister is a Store that lists a folder's artifacts, for retention that must
// find files no catalog names (the WAL archive's segments).
type Lister interface {
	Store
	// List returns the names (last element only) of the artifacts directly
	// under dir, in no particular order; a missing dir has none.
	List(ctx context.Context, dir string) ([]string, error)
}

var (
	_ Lister = (*Dir)(nil)
	_ Lister = (*S3)(nil)
)

// List returns the regular files directly under dir.
func (d *Dir) List(ctx context.Context, dir string) ([]string, error) {
	if err := ValidateName(dir); err != nil {
		return nil, err
	}
	root, err := os.OpenRoot(d.root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, d.readErr(dir, err)
	}
	defer func() { _ = root.Close() }()
	entries, err := fs.ReadDir(root.FS(), dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, d.readErr(dir, err)
	}
	var names []string
	for _, e := range entries {
		if e.Type().IsRegular() {
			names = append(names, e.Name())
		}
	}
	return names, nil
}

// List returns the objects directly under dir/ (not deeper).
func (s *S3) List(ctx context.Context, dir string) ([]string, error) {
	if err := ValidateName(dir); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.OpTimeout)
	defer cancel()
	prefix := s.key(dir) + "/"
	var names []string
	for obj := range s.client.ListObjects(ctx, s.cfg.Bucket, minio.ListObjectsOptions{Prefix: prefix}) {
		if obj.Err != nil {
			return nil, s.err(ctx, "list", dir, obj.Err)
		}
		if name := strings.TrimPrefix(obj.Key, prefix); name != "" && !strings.HasSuffix(name, "/") {
			names = append(names, path.Base(name))
		}
	}
	return names, nil
}
