package backupstore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"

	"github.com/minio/minio-go/v7"
)

// Lister is a Store that lists a folder's artifacts, for retention that must
// find files no catalog names (the WAL archive's segments, scheduled
// control-plane snapshots).
type Lister interface {
	Store
	// List returns the names (last element only) of the artifacts directly
	// under dir ("" is the store's top), sorted; a missing dir has none.
	// Temporary files of a Put in progress are not artifacts: their names
	// start with '.', which ValidateName refuses.
	List(ctx context.Context, dir string) ([]string, error)
}

var (
	_ Lister = (*Dir)(nil)
	_ Lister = (*S3)(nil)
)

// List returns the artifacts directly under dir.
func (d *Dir) List(ctx context.Context, dir string) ([]string, error) {
	if dir != "" {
		if err := ValidateName(dir); err != nil {
			return nil, err
		}
	}
	root, err := os.OpenRoot(d.root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", d.root, err)
	}
	defer func() { _ = root.Close() }()
	entries, err := fs.ReadDir(root.FS(), cmp.Or(dir, "."))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, d.readErr(dir, err)
	}
	var names []string
	for _, e := range entries {
		if e.Type().IsRegular() && ValidateName(e.Name()) == nil {
			names = append(names, e.Name())
		}
	}
	return names, ctx.Err() // fs.ReadDir sorts
}

// List returns the objects directly under dir (not deeper), within
// OpTimeout.
func (s *S3) List(ctx context.Context, dir string) ([]string, error) {
	prefix := ""
	if dir != "" {
		if err := ValidateName(dir); err != nil {
			return nil, err
		}
		prefix = s.key(dir) + "/"
	} else if s.cfg.Prefix != "" {
		prefix = s.cfg.Prefix + "/"
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.OpTimeout)
	defer cancel()
	var names []string
	for obj := range s.client.ListObjects(ctx, s.cfg.Bucket, minio.ListObjectsOptions{Prefix: prefix}) {
		if obj.Err != nil {
			return nil, s.err(ctx, "list", dir, obj.Err)
		}
		name := strings.TrimPrefix(obj.Key, prefix)
		if !strings.Contains(name, "/") && ValidateName(name) == nil {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names, nil
}
