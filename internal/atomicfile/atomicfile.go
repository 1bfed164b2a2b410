package atomicfile

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
)

// Write replaces path with data, mode exactly perm. Readers see the old
// content or the new, never a mix. On any error before the rename the
// temporary file is removed and path is untouched.
func Write(path string, data []byte, perm fs.FileMode) error {
	f, err := Create(path, perm)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		_ = f.Abort()
		return err
	}
	return f.Commit()
}

// WriteNew creates path with data, mode exactly perm, and refuses to
// replace an existing path: then it returns an error wrapping fs.ErrExist.
// The file appears complete or not at all.
func WriteNew(path string, data []byte, perm fs.FileMode) error {
	f, err := Create(path, perm)
	if err != nil {
		return err
	}
	f.noReplace = true
	if _, err := f.Write(data); err != nil {
		_ = f.Abort()
		return err
	}
	return f.Commit()
}

// Create starts a streaming write of path: bytes written to the returned
// File go to a temporary file beside path, which Commit puts in place and
// Abort removes. The directory of path must exist.
func Create(name string, perm fs.FileMode) (*File, error) {
	dir := filepath.Dir(name)
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("write %s: %w", name, err)
	}
	f, err := create(root, filepath.Base(name), perm)
	if err != nil {
		_ = root.Close()
		return nil, fmt.Errorf("write %s: %w", name, err)
	}
	f.display, f.ownRoot = name, true
	return f, nil
}

// CreateIn is Create for name (slash-separated, e.g. "node-1/x.enc") inside
// root: every access goes through root, so a symlink planted under it
// cannot lead outside. The parent of name must exist; root must stay open
// until Commit or Abort.
func CreateIn(root *os.Root, name string, perm fs.FileMode) (*File, error) {
	f, err := create(root, name, perm)
	if err != nil {
		return nil, fmt.Errorf("write %s: %w", name, err)
	}
	f.display = name
	return f, nil
}

// tempName matches the names of temporary files: "." + base + ".tmp-" and
// 16 hex digits.
var tempName = regexp.MustCompile(`^\..+\.tmp-[0-9a-f]{16}$`)

// IsTemp reports whether base (a file name without directory) is the name
// of a temporary file of this package, e.g. one left by a crash.
func IsTemp(base string) bool { return tempName.MatchString(base) }

// create opens a fresh temporary file beside name under root with O_EXCL
// and sets its mode to exactly perm before any byte is written.
func create(root *os.Root, name string, perm fs.FileMode) (*File, error) {
	var rnd [8]byte
	for range 10 {
		if _, err := rand.Read(rnd[:]); err != nil {
			return nil, err
		}
		tmp := path.Join(path.Dir(name), "."+path.Base(name)+".tmp-"+hex.EncodeToString(rnd[:]))
		// The kernel applies the umask, which can only narrow perm.
		fh, err := root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm.Perm())
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		// Exactly perm, whatever the umask: the caller says the mode it wants.
		if err := fh.Chmod(perm.Perm()); err != nil {
			_ = fh.Close()
			_ = root.Remove(tmp)
			return nil, err
		}
		return &File{root: root, fh: fh, tmp: tmp, name: name}, nil
	}
	return nil, errors.New("create temporary file: too many collisions")
}
