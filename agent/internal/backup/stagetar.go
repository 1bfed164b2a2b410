package backup

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/forlock/fleet/internal/artifact"
)

// baseInfo is what stageTar learnt of a base backup.
type baseInfo struct {
	version string // PG_VERSION's content
	files   int
}

// maxVersionFile bounds PG_VERSION, a few bytes.
const maxVersionFile = 64

// stageTar copies the pg_basebackup tar from r to w with every entry moved
// under dir (a directory entry for dir first, owned as the first entry).
// It refuses what pg_basebackup does not write: entries other than regular
// files and directories, names that are absolute, unclean or leave the
// directory, and a tar without PG_VERSION, backup_label and
// global/pg_control.
func stageTar(w io.Writer, r io.Reader, dir string) (baseInfo, error) {
	tr, tw := tar.NewReader(r), tar.NewWriter(w)
	var info baseInfo
	seen := map[string]bool{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return info, fmt.Errorf("%w: not a base backup tar: %w", artifact.ErrCorrupted, err)
		}
		// pg_basebackup names the WAL it fetched "./pg_wal/...".
		name := strings.TrimPrefix(strings.TrimSuffix(h.Name, "/"), "./")
		if err := baseEntryOK(h, name); err != nil {
			return info, fmt.Errorf("%w: %w", artifact.ErrCorrupted, err)
		}
		if info.files == 0 && dir != "" {
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: dir + "/", Mode: 0o700, Uid: h.Uid, Gid: h.Gid, ModTime: h.ModTime}); err != nil {
				return info, err
			}
		}
		info.files++
		seen[name] = true
		out := *h
		out.Name = path.Join(dir, name)
		if h.Typeflag == tar.TypeDir {
			out.Name += "/"
		}
		out.PAXRecords, out.Format = nil, tar.FormatUnknown
		if err := tw.WriteHeader(&out); err != nil {
			return info, err
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		if name == "PG_VERSION" {
			if h.Size > maxVersionFile {
				return info, fmt.Errorf("%w: PG_VERSION of %d bytes", artifact.ErrCorrupted, h.Size)
			}
			var b strings.Builder
			if _, err := io.CopyN(io.MultiWriter(tw, &b), tr, h.Size); err != nil {
				return info, err
			}
			info.version = strings.TrimSpace(b.String())
			continue
		}
		if _, err := io.CopyN(tw, tr, h.Size); err != nil {
			return info, err
		}
	}
	for _, must := range []string{"PG_VERSION", "backup_label", "global/pg_control"} {
		if !seen[must] {
			return info, fmt.Errorf("%w: not a base backup: no %s in the tar", artifact.ErrCorrupted, must)
		}
	}
	return info, tw.Close()
}

// baseEntryOK checks one entry of a base backup tar.
func baseEntryOK(h *tar.Header, name string) error {
	if h.Typeflag != tar.TypeReg && h.Typeflag != tar.TypeDir {
		return fmt.Errorf("entry %q of type %q: a base backup holds only files and directories", h.Name, h.Typeflag)
	}
	if name == "" || path.IsAbs(name) || path.Clean(name) != name || name == ".." || strings.HasPrefix(name, "../") ||
		strings.ContainsRune(name, 0) || name == incomingDir || name == previousDir ||
		strings.HasPrefix(name, incomingDir+"/") || strings.HasPrefix(name, previousDir+"/") {
		return fmt.Errorf("entry %q: not a clean name inside the data directory", h.Name)
	}
	if h.Size < 0 {
		return fmt.Errorf("entry %q: negative size", h.Name)
	}
	return nil
}
