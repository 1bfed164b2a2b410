package backup

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"path/filepath"
	"strings"

	"github.com/forlock/fleet/internal/backupstore"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// ErrNotAllowed is the error of a directory outside the agent's allowed backup
// directories.
var ErrNotAllowed = errors.New("outside the agent's allowed backup directories")

// target is where a task's artifacts are: a store and the prefix of the
// artifact names in it.
type target struct {
	store  backupstore.Store
	prefix string // "" or "node-1/"
	close  func()
}

// destination opens where a backup goes: the spec's directory, which must
// lie inside an allowed backup directory; the spec's S3 bucket on the
// agent's S3 server; or by default <first allowed dir>/<node>/.
func (c *core) destination(ctx context.Context, d *forlockv1.BackupDestination, node string) (target, error) {
	switch k := d.GetKind().(type) {
	case nil:
		st, err := backupstore.NewDir(backupstore.DirConfig{Root: c.cfg.BackupDirs[0]})
		if err != nil {
			return target{}, err
		}
		return target{store: st, prefix: node + "/", close: func() {}}, nil
	case *forlockv1.BackupDestination_Dir:
		root, err := c.allowedDir(k.Dir)
		if err != nil {
			return target{}, err
		}
		st, err := backupstore.NewDir(backupstore.DirConfig{Root: root})
		if err != nil {
			return target{}, err
		}
		return target{store: st, close: func() {}}, nil
	case *forlockv1.BackupDestination_S3:
		st, err := c.s3(k.S3.GetBucket(), strings.Trim(k.S3.GetPrefix(), "/"))
		if err != nil {
			return target{}, err
		}
		if err := st.Check(ctx); err != nil {
			_ = st.Close()
			return target{}, err
		}
		return target{store: st, prefix: node + "/", close: func() { _ = st.Close() }}, nil
	}
	return target{}, errors.New("unknown kind of destination: this agent knows a directory or an S3 bucket")
}

// s3 returns a store for bucket/prefix on the agent's S3 server.
func (c *core) s3(bucket, prefix string) (*backupstore.S3, error) {
	return c.cfg.S3.Open(bucket, prefix)
}

// Open returns a store for bucket/prefix on this S3 server, with the
// credentials read now.
func (s S3Config) Open(bucket, prefix string) (*backupstore.S3, error) {
	if s.Endpoint == "" {
		return nil, errors.New("no S3 server is configured on this agent: set s3_endpoint, s3_access_key_file and s3_secret_key_file")
	}
	ak, err := readSecret(s.AccessKey, "S3 access key")
	if err != nil {
		return nil, err
	}
	sk, err := readSecret(s.SecretKey, "S3 secret key")
	if err != nil {
		return nil, err
	}
	return backupstore.NewS3(backupstore.S3Config{Endpoint: s.Endpoint, Bucket: bucket, Prefix: prefix,
		AccessKey: ak, SecretKey: sk, TLS: s.TLS, Region: s.Region})
}

func readSecret(s Secret, what string) (string, error) {
	if s == nil {
		return "", fmt.Errorf("%s is not configured", what)
	}
	v, err := s()
	if err != nil {
		return "", fmt.Errorf("read the %s: %w", what, err)
	}
	if v == "" {
		return "", fmt.Errorf("the %s is empty", what)
	}
	return v, nil
}

// allowedDir returns dir with the symbolic links of its existing part
// resolved, if it lies inside one of the allowed backup directories
// (resolved the same way), else an error wrapping ErrNotAllowed.
func (c *core) allowedDir(dir string) (string, error) {
	if !filepath.IsAbs(dir) || filepath.Clean(dir) != dir {
		return "", fmt.Errorf("backup directory %q: give an absolute, clean path", dir)
	}
	resolved, err := resolve(dir)
	if err != nil {
		return "", fmt.Errorf("backup directory %s: %w", dir, err)
	}
	for _, a := range c.cfg.BackupDirs {
		ra, err := resolve(a)
		if err != nil {
			continue
		}
		if within(resolved, ra) {
			return resolved, nil
		}
	}
	return "", fmt.Errorf("backup directory %s is %w (%s): choose a directory inside one of them, or add it to backup_dirs in the agent's config",
		dir, ErrNotAllowed, strings.Join(c.cfg.BackupDirs, ", "))
}

// resolve evaluates the symbolic links of the longest existing ancestor
// of p and appends the rest.
func resolve(p string) (string, error) {
	rest, cur := "", p
	for {
		r, err := filepath.EvalSymlinks(cur)
		if err == nil {
			return filepath.Join(r, rest), nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
		parent := filepath.Dir(cur)
		if parent == cur {
			return p, nil
		}
		rest = filepath.Join(filepath.Base(cur), rest)
		cur = parent
	}
}

// within reports whether p is dir or below it; both clean and absolute.
func within(p, dir string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../") && !filepath.IsAbs(rel)
}

// source opens the store that holds an artifact at location: a host path
// inside an allowed backup directory, or s3://bucket/key on the agent's S3
// server. It returns the store and the artifact's name in it.
func (c *core) source(location string) (backupstore.Store, string, func(), error) {
	if rest, ok := strings.CutPrefix(location, "s3://"); ok {
		bucket, key, ok := strings.Cut(rest, "/")
		if !ok || bucket == "" || key == "" {
			return nil, "", nil, fmt.Errorf("location %q: want s3://BUCKET/KEY", location)
		}
		st, err := c.s3(bucket, "")
		if err != nil {
			return nil, "", nil, err
		}
		return st, key, func() { _ = st.Close() }, nil
	}
	if !filepath.IsAbs(location) || filepath.Clean(location) != location {
		return nil, "", nil, fmt.Errorf("location %q: want an absolute, clean host path or s3://BUCKET/KEY", location)
	}
	resolved, err := resolve(location)
	if err != nil {
		return nil, "", nil, fmt.Errorf("artifact %s: %w", location, err)
	}
	for _, a := range c.cfg.BackupDirs {
		ra, err := resolve(a)
		if err != nil || !within(resolved, ra) || resolved == ra {
			continue
		}
		rel, err := filepath.Rel(ra, resolved)
		if err != nil {
			continue
		}
		st, err := backupstore.NewDir(backupstore.DirConfig{Root: ra})
		if err != nil {
			return nil, "", nil, err
		}
		return st, path.Clean(filepath.ToSlash(rel)), func() {}, nil
	}
	return nil, "", nil, fmt.Errorf("artifact %s is %w (%s): restore refuses to read it; add its directory to backup_dirs",
		location, ErrNotAllowed, strings.Join(c.cfg.BackupDirs, ", "))
}
