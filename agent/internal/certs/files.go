package certs

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"time"

	"github.com/forlock/fleet/agent/internal/dockerrt"
)

// Docker is what Install needs of the node's containers; dockerrt.Runtime
// is one.
type Docker interface {
	Exec(ctx context.Context, service, user string, cmd []string, stdin io.Reader, stdout io.Writer) (dockerrt.ExecResult, error)
	CopyTo(ctx context.Context, service, dir string, tarball io.Reader) error
	ReadFile(ctx context.Context, service, path string, limit int64) ([]byte, error)
}

// root runs the in-container commands: nginx -s reload signals the master,
// which runs as root.
const root = "0"

// file is one file in the container.
type file struct {
	path string
	data []byte
	mode int64
	// absent: the file did not exist (restoring it removes it).
	absent bool
}

// snapshot is the pair found in the container before the install, kept
// in memory only.
type snapshot struct{ cert, key file }

// readFile reads a file of the container; a missing one is absent.
func (i *installer) readFile(ctx context.Context, p string, mode int64) (file, error) {
	ctx, cancel := context.WithTimeout(ctx, i.cfg.ExecTimeout)
	defer cancel()
	data, err := i.cfg.Docker.ReadFile(ctx, i.cfg.Service, p, MaxPEM)
	if errors.Is(err, fs.ErrNotExist) {
		return file{path: p, mode: mode, absent: true}, nil
	}
	if err != nil {
		return file{}, err
	}
	return file{path: p, data: data, mode: mode}, nil
}

// renameScript applies its arguments in order: "mv TMP DST" renames, "rm
// PATH" removes. One exec does every rename, so the pair changes together.
const renameScript = `set -e
while [ $# -gt 0 ]; do
  case $1 in
    mv) mv -f -- "$2" "$3"; shift 3 ;;
    rm) rm -f -- "$2"; shift 2 ;;
    *) echo "bad operation $1" >&2; exit 2 ;;
  esac
done`

// writeFiles puts the files in place atomically: copied to temporary names
// in their directories (owner root; one copy per directory), then renamed
// over the targets by one exec. A file marked absent is removed instead.
// Temporary files are removed if a step fails. changed is false when the
// step failed before any target was touched.
func (i *installer) writeFiles(ctx context.Context, files ...file) (changed bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, i.cfg.ExecTimeout*time.Duration(len(files)+1))
	defer cancel()
	var tmps []string
	defer func() {
		if len(tmps) > 0 {
			_ = i.exec(context.WithoutCancel(ctx), append([]string{"rm", "-f", "--"}, tmps...)...)
		}
	}()
	ops := []string{"sh", "-c", renameScript, "sh"}
	var dirs []string
	byDir := map[string][]tarEntry{}
	for _, f := range files {
		if f.absent {
			ops = append(ops, "rm", f.path)
			continue
		}
		dir, base := path.Split(f.path)
		tmp := "." + base + ".forlock-" + randomHex() + ".tmp"
		if _, ok := byDir[dir]; !ok {
			dirs = append(dirs, dir)
		}
		byDir[dir] = append(byDir[dir], tarEntry{name: tmp, data: f.data, mode: f.mode})
		ops = append(ops, "mv", path.Join(dir, tmp), f.path)
	}
	for _, dir := range dirs {
		tb, err := tarball(byDir[dir]...)
		if err != nil {
			return false, err
		}
		if err := i.cfg.Docker.CopyTo(ctx, i.cfg.Service, dir, bytes.NewReader(tb)); err != nil {
			return false, fmt.Errorf("write into %s: %w", dir, err)
		}
		for _, e := range byDir[dir] {
			tmps = append(tmps, path.Join(dir, e.name))
		}
	}
	if err := i.exec(ctx, ops...); err != nil {
		return true, fmt.Errorf("rename the new files into place: %w", err)
	}
	tmps = nil
	return true, nil
}

// tarEntry is one file of a tarball.
type tarEntry struct {
	name string
	data []byte
	mode int64
}

// tarball is a tar stream of files owned by root.
func tarball(entries ...tarEntry) ([]byte, error) {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, e := range entries {
		h := &tar.Header{Typeflag: tar.TypeReg, Name: e.name, Mode: e.mode, Size: int64(len(e.data)),
			Uid: 0, Gid: 0, Uname: "root", Gname: "root", ModTime: time.Now()}
		if err := tw.WriteHeader(h); err != nil {
			return nil, fmt.Errorf("tar %s: %w", e.name, err)
		}
		if _, err := tw.Write(e.data); err != nil {
			return nil, fmt.Errorf("tar %s: %w", e.name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("tar: %w", err)
	}
	return b.Bytes(), nil
}

// exec runs a command as root in the container and fails with its stderr.
func (i *installer) exec(ctx context.Context, cmd ...string) error {
	res, err := i.cfg.Docker.Exec(ctx, i.cfg.Service, root, cmd, nil, io.Discard)
	if err != nil {
		return err
	}
	return res.Err(cmd[0])
}

func randomHex() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
