package dockerrt

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"
)

// maxLinks bounds the symbolic links ReadFile follows.
const maxLinks = 8

// ReadFile returns the content of the regular file at the absolute path p
// in the container serving service, which may be stopped. Symbolic links
// are followed. A file larger than limit bytes is an error; a missing file
// is an error wrapping fs.ErrNotExist. The content travels over the Engine
// API as a tar stream and is kept only in memory.
func (r *Runtime) ReadFile(ctx context.Context, service, p string, limit int64) ([]byte, error) {
	if !path.IsAbs(p) {
		return nil, fmt.Errorf("read %q: want an absolute path in the container", p)
	}
	id, cname, err := r.find(ctx, service)
	if err != nil {
		return nil, err
	}
	for range maxLinks {
		res, err := r.cli.CopyFromContainer(ctx, id, client.CopyFromContainerOptions{SourcePath: p})
		if err != nil {
			if cerrdefs.IsNotFound(err) {
				return nil, fmt.Errorf("read %s in container %s: %w", p, cname, fs.ErrNotExist)
			}
			return nil, fmt.Errorf("read %s in container %s: %w", p, cname, err)
		}
		switch mode := res.Stat.Mode; {
		case mode&fs.ModeSymlink != 0:
			_ = res.Content.Close()
			if res.Stat.LinkTarget == "" {
				return nil, fmt.Errorf("read %s in container %s: symbolic link without a target", p, cname)
			}
			target := res.Stat.LinkTarget
			if !path.IsAbs(target) {
				target = path.Join(path.Dir(p), target)
			}
			p = target
			continue
		case !mode.IsRegular():
			_ = res.Content.Close()
			return nil, fmt.Errorf("read %s in container %s: not a regular file (mode %s)", p, cname, mode)
		case res.Stat.Size > limit:
			_ = res.Content.Close()
			return nil, fmt.Errorf("read %s in container %s: %d bytes, more than the %d expected", p, cname, res.Stat.Size, limit)
		}
		data, err := firstFile(res.Content, limit)
		_ = res.Content.Close()
		if err != nil {
			return nil, fmt.Errorf("read %s in container %s: %w", p, cname, err)
		}
		return data, nil
	}
	return nil, fmt.Errorf("read %s in container %s: more than %d symbolic links", p, cname, maxLinks)
}

// firstFile returns the content of the tar stream's first entry, which
// must be a regular file of at most limit bytes.
func firstFile(r io.Reader, limit int64) ([]byte, error) {
	tr := tar.NewReader(r)
	h, err := tr.Next()
	if errors.Is(err, io.EOF) {
		return nil, errors.New("empty archive from the engine")
	}
	if err != nil {
		return nil, fmt.Errorf("archive from the engine: %w", err)
	}
	if h.Typeflag != tar.TypeReg {
		return nil, fmt.Errorf("archive from the engine holds %q of type %q, want a regular file", h.Name, h.Typeflag)
	}
	if h.Size > limit {
		return nil, fmt.Errorf("%d bytes, more than the %d expected", h.Size, limit)
	}
	data, err := io.ReadAll(io.LimitReader(tr, limit+1))
	if err != nil {
		return nil, fmt.Errorf("archive from the engine: %w", err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("more than the %d bytes expected", limit)
	}
	return data, nil
}
