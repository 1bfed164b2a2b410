package commands

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/forlock/fleet/internal/atomicfile"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// logArchive collects log lines per service in temporary files (a tail may
// be large) and then writes them as a tar.gz holding one <service>.log per
// service asked for, empty when the service had no line. Each line is
// "TIME TEXT" with TIME in RFC 3339 UTC, as 'docker logs -t' writes it.
type logArchive struct {
	dir      string
	services []string
	files    map[string]*os.File
	bufs     map[string]*bufio.Writer
	counts   map[string]int
}

func newLogArchive(services []string) (*logArchive, error) {
	dir, err := os.MkdirTemp("", "forlockctl-logs-")
	if err != nil {
		return nil, fmt.Errorf("export: make a temporary directory: %w", err)
	}
	x := &logArchive{dir: dir, services: services, files: map[string]*os.File{},
		bufs: map[string]*bufio.Writer{}, counts: map[string]int{}}
	for _, s := range services {
		f, err := os.Create(filepath.Join(dir, s+".log"))
		if err != nil {
			x.close()
			return nil, fmt.Errorf("export: %w", err)
		}
		x.files[s], x.bufs[s] = f, bufio.NewWriter(f)
	}
	return x, nil
}

// add appends a line to its service's file; lines of services not asked
// for are dropped.
func (x *logArchive) add(l *forlockv1.LogLine) error {
	b, ok := x.bufs[l.GetService()]
	if !ok {
		return nil
	}
	ts := "-"
	if l.GetTime() != nil {
		ts = l.GetTime().AsTime().UTC().Format(time.RFC3339Nano)
	}
	if _, err := fmt.Fprintf(b, "%s %s\n", ts, l.GetText()); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	x.counts[l.GetService()]++
	return nil
}

// write writes the archive to w; modTime stamps its entries.
func (x *logArchive) write(w io.Writer, modTime time.Time) error {
	zw := gzip.NewWriter(w)
	tw := tar.NewWriter(zw)
	for _, s := range x.services {
		if err := x.bufs[s].Flush(); err != nil {
			return fmt.Errorf("export %s: %w", s, err)
		}
		f := x.files[s]
		size, err := f.Seek(0, io.SeekEnd)
		if err != nil {
			return fmt.Errorf("export %s: %w", s, err)
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return fmt.Errorf("export %s: %w", s, err)
		}
		hdr := &tar.Header{Name: s + ".log", Mode: 0o644, Size: size, ModTime: modTime, Typeflag: tar.TypeReg, Format: tar.FormatPAX}
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("export %s: %w", s, err)
		}
		if _, err := io.CopyN(tw, f, size); err != nil {
			return fmt.Errorf("export %s: %w", s, err)
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	return nil
}

// save writes the archive to path with atomicfile (mode 0644, like a file
// the shell would create), so that path is either the whole archive or
// untouched.
func (x *logArchive) save(path string, modTime time.Time) error {
	f, err := atomicfile.Create(path, 0o644)
	if err != nil {
		return fmt.Errorf("export to %s: %w", path, err)
	}
	defer f.Abort() //nolint:errcheck // no-op after Commit; otherwise the partial archive goes
	if err := x.write(f, modTime); err != nil {
		return err
	}
	if err := f.Commit(); err != nil {
		return fmt.Errorf("export to %s: %w", path, err)
	}
	return nil
}

// close removes the temporary files.
func (x *logArchive) close() {
	for _, f := range x.files {
		_ = f.Close() // removed next either way
	}
	_ = os.RemoveAll(x.dir)
}
