package backup

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// Top-level directories of a config artifact.
const (
	composePrefix = "compose"
	nginxPrefix   = "nginx"
	nginxConfDir  = "/etc/nginx"
)

// archiveConfig writes the config artifact's tar: the compose directory
// (compose file, .env and the rest, without a backups directory or the
// backup directories) under compose/, and the nginx container's /etc/nginx
// under nginx/.
func (c *core) archiveConfig(ctx context.Context, w io.Writer) error {
	tw := tar.NewWriter(w)
	if err := c.addComposeDir(ctx, tw); err != nil {
		return err
	}
	if err := c.addNginx(ctx, tw); err != nil {
		return err
	}
	return tw.Close()
}

func (c *core) addComposeDir(ctx context.Context, tw *tar.Writer) error {
	root := c.cfg.ComposeDir
	fi, err := os.Stat(root)
	if err != nil {
		return fmt.Errorf("compose directory: %w: set compose_dir to the node's compose directory", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("compose directory %s is not a directory: set compose_dir", root)
	}
	if _, err := os.Stat(filepath.Join(root, ".env")); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("compose directory: %w", err)
	}
	skip := map[string]bool{}
	for _, d := range c.cfg.BackupDirs {
		if r, err := resolve(d); err == nil {
			skip[r] = true
		}
	}
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("compose directory: %w", err)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		if d.IsDir() && (rel == "backups" || skip[p]) {
			return filepath.SkipDir
		}
		info, err := d.Info()
		if err != nil {
			return fmt.Errorf("compose directory: %w", err)
		}
		link := ""
		switch {
		case info.Mode().IsRegular(), info.IsDir():
		case info.Mode()&fs.ModeSymlink != 0:
			if link, err = os.Readlink(p); err != nil {
				return fmt.Errorf("compose directory: %w", err)
			}
		default:
			return nil // sockets, devices, pipes: not configuration
		}
		hdr, err := tar.FileInfoHeader(info, link)
		if err != nil {
			return fmt.Errorf("compose directory: %s: %w", p, err)
		}
		hdr.Name = path.Join(composePrefix, filepath.ToSlash(rel))
		if info.IsDir() {
			hdr.Name += "/"
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if !info.Mode().IsRegular() {
			return nil
		}
		return copyFile(tw, p, hdr.Size)
	})
}

// copyFile writes exactly size bytes of the file at p: a file that grew
// since its header was written is cut, one that shrank fails.
func copyFile(w io.Writer, p string, size int64) error {
	f, err := os.Open(p)
	if err != nil {
		return fmt.Errorf("compose directory: %w", err)
	}
	defer func() { _ = f.Close() }()
	if _, err := io.CopyN(w, f, size); err != nil {
		return fmt.Errorf("compose directory: %s: %w", p, err)
	}
	return nil
}

// addNginx streams `tar -C /etc/nginx -cf - .` out of the nginx container
// and re-files its entries under nginx/.
func (c *core) addNginx(ctx context.Context, tw *tar.Writer) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pr, pw := io.Pipe()
	execDone := make(chan error, 1)
	go func() {
		res, err := c.cfg.Docker.Exec(ctx, "nginx", "", []string{"tar", "-C", nginxConfDir, "-cf", "-", "."}, nil, pw)
		if err == nil {
			err = res.Err("tar of " + nginxConfDir)
		}
		pw.CloseWithError(err)
		execDone <- err
	}()
	err := refile(tw, tar.NewReader(pr), nginxPrefix)
	if err == nil {
		// tar pads its output to whole records after the end marker.
		_, err = io.Copy(io.Discard, pr)
	}
	if err != nil {
		cancel()
		_ = pr.CloseWithError(err)
	}
	if eerr := <-execDone; eerr != nil {
		return fmt.Errorf("nginx config: %w", eerr)
	}
	if err != nil {
		return fmt.Errorf("nginx config: %w", err)
	}
	return nil
}

// refile copies every entry of tr into tw under prefix.
func refile(tw *tar.Writer, tr *tar.Reader, prefix string) error {
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		name, ok := inside(prefix, hdr.Name)
		if !ok {
			return fmt.Errorf("entry %q leaves the archive's directory", hdr.Name)
		}
		if hdr.Typeflag == tar.TypeDir {
			name += "/"
		}
		if hdr.Typeflag == tar.TypeLink {
			if hdr.Linkname, ok = inside(prefix, hdr.Linkname); !ok {
				return fmt.Errorf("hard link %q leaves the archive's directory", hdr.Name)
			}
		}
		hdr.Name = name
		hdr.PAXRecords, hdr.Format = nil, tar.FormatUnknown
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if _, err := io.Copy(tw, tr); err != nil {
			return err
		}
	}
}

// inside joins prefix and an archive name, refusing names with ".."
// segments.
func inside(prefix, name string) (string, bool) {
	if slices.Contains(strings.Split(name, "/"), "..") {
		return "", false
	}
	clean := path.Clean("/" + name)
	if clean == "/" {
		return prefix, true
	}
	return prefix + clean, true
}
