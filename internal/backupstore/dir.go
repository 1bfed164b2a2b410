package backupstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"syscall"

	"github.com/forlock/fleet/internal/atomicfile"
)

// DefaultDir is where Dir keeps artifacts when DirConfig.Root is empty.
const DefaultDir = "/var/backups/forlock"

// Modes of what Dir creates: artifacts hold database contents (encrypted,
// but still nobody else's business).
const (
	fileMode fs.FileMode = 0o600
	dirMode  fs.FileMode = 0o700
)

// DirConfig configures a Dir.
type DirConfig struct {
	// Root is the directory artifacts go under: an absolute, clean path
	// (no "..", no trailing '/'). Created with mode 0700 on the first Put.
	// Default DefaultDir.
	Root string
}

// Dir stores artifacts as files under a host directory. A Put writes
// through atomicfile (temporary file beside the destination, fsync, rename,
// fsync of the directory), so readers never see a partial artifact. Every access goes through
// os.Root, so a symlink planted under Root cannot lead outside it.
type Dir struct {
	root string
}

var _ Store = (*Dir)(nil)

// NewDir validates cfg. It touches nothing on disk.
func NewDir(cfg DirConfig) (*Dir, error) {
	root := cfg.Root
	if root == "" {
		root = DefaultDir
	}
	if !filepath.IsAbs(root) {
		return nil, fmt.Errorf("backup directory %q: must be an absolute path", root)
	}
	if filepath.Clean(root) != root {
		return nil, fmt.Errorf("backup directory %q: must be a clean path (did you mean %q?)", root, filepath.Clean(root))
	}
	return &Dir{root: root}, nil
}

// Location returns the artifact's host path.
func (d *Dir) Location(name string) string { return filepath.Join(d.root, filepath.FromSlash(name)) }

// Put streams r through atomicfile.CreateIn: a temporary file in the
// destination's directory, fsynced, renamed to name, then the directory
// fsynced. On any error the temporary file is removed; when the file system
// is out of space or quota the error wraps ErrFull and names the path.
func (d *Dir) Put(ctx context.Context, name string, r io.Reader) (int64, error) {
	if err := ValidateName(name); err != nil {
		return 0, err
	}
	dst := d.Location(name)
	if err := os.MkdirAll(d.root, dirMode); err != nil {
		return 0, d.writeErr(dst, fmt.Errorf("create %s: %w", d.root, err))
	}
	root, err := os.OpenRoot(d.root)
	if err != nil {
		return 0, fmt.Errorf("open backup directory: %w", err)
	}
	defer func() { _ = root.Close() }()
	parent := path.Dir(name)
	if err := root.MkdirAll(parent, dirMode); err != nil {
		return 0, d.writeErr(dst, fmt.Errorf("create %s: %w", filepath.Dir(dst), err))
	}

	f, err := atomicfile.CreateIn(root, name, fileMode)
	if err != nil {
		return 0, d.writeErr(dst, err)
	}
	n, err := io.Copy(f, ctxReader{ctx: ctx, r: r})
	if err != nil {
		_ = f.Abort()
		return 0, d.writeErr(dst, err)
	}
	if err := f.Commit(); err != nil {
		return 0, d.writeErr(dst, err)
	}
	return n, nil
}

// writeErr turns a failed write to dst into the error the operator sees.
func (d *Dir) writeErr(dst string, err error) error {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return fmt.Errorf("%w: no space left for %s (file system of %s); the partial file was removed, free space or choose another destination: %w",
			ErrFull, dst, d.root, err)
	}
	return fmt.Errorf("write backup %s: %w", dst, err)
}

// Open opens the artifact for reading.
func (d *Dir) Open(ctx context.Context, name string) (io.ReadCloser, int64, error) {
	if err := ValidateName(name); err != nil {
		return nil, 0, err
	}
	root, err := d.openRoot(name)
	if err != nil {
		return nil, 0, err
	}
	defer func() { _ = root.Close() }()
	f, err := root.Open(name)
	if err != nil {
		return nil, 0, d.readErr(name, err)
	}
	fi, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, 0, d.readErr(name, err)
	}
	if !fi.Mode().IsRegular() {
		_ = f.Close()
		return nil, 0, fmt.Errorf("backup %s is not a regular file", d.Location(name))
	}
	return f, fi.Size(), nil
}

// Stat returns the artifact's size.
func (d *Dir) Stat(ctx context.Context, name string) (int64, error) {
	if err := ValidateName(name); err != nil {
		return 0, err
	}
	root, err := d.openRoot(name)
	if err != nil {
		return 0, err
	}
	defer func() { _ = root.Close() }()
	fi, err := root.Stat(name)
	if err != nil {
		return 0, d.readErr(name, err)
	}
	if !fi.Mode().IsRegular() {
		return 0, fmt.Errorf("backup %s is not a regular file", d.Location(name))
	}
	return fi.Size(), nil
}

// Delete removes the artifact; a missing one is not an error.
func (d *Dir) Delete(ctx context.Context, name string) error {
	if err := ValidateName(name); err != nil {
		return err
	}
	root, err := d.openRoot(name)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	defer func() { _ = root.Close() }()
	if fi, err := root.Lstat(name); err == nil && fi.IsDir() {
		return fmt.Errorf("delete backup %s: is a directory, not an artifact", d.Location(name))
	}
	if err := root.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delete backup %s: %w", d.Location(name), err)
	}
	return nil
}

// openRoot opens the backup directory; a missing one means name is missing.
func (d *Dir) openRoot(name string) (*os.Root, error) {
	root, err := os.OpenRoot(d.root)
	if err != nil {
		return nil, d.readErr(name, err)
	}
	return root, nil
}

func (d *Dir) readErr(name string, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: %s", ErrNotFound, d.Location(name))
	}
	return fmt.Errorf("backup %s: %w", d.Location(name), err)
}

// ContextReader returns a reader of r that fails with ctx's error once ctx
// ends, so a long copy stops with its task.
func ContextReader(ctx context.Context, r io.Reader) io.Reader { return ctxReader{ctx: ctx, r: r} }

// ctxReader stops a copy once ctx ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
