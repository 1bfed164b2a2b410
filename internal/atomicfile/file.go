package atomicfile

import (
	"fmt"
	"os"
	"path"
)

// File is a write in progress: a temporary file that becomes the
// destination on Commit. It is not safe for concurrent use.
type File struct {
	root      *os.Root
	ownRoot   bool // root was opened by Create and is closed with the File
	fh        *os.File
	tmp, name string // under root
	display   string // name for errors
	noReplace bool   // Commit links instead of renaming
	done      bool
}

// Write writes to the temporary file.
func (f *File) Write(p []byte) (int, error) {
	if f.done {
		return 0, fmt.Errorf("write %s: %w", f.display, os.ErrClosed)
	}
	n, err := f.fh.Write(p)
	if err != nil {
		return n, fmt.Errorf("write %s: %w", f.display, err)
	}
	return n, nil
}

// TempName returns the temporary file's path under the root it was created
// in (for Create, beside the destination).
func (f *File) TempName() string { return f.fh.Name() }

// Commit fsyncs and closes the temporary file, renames it over the
// destination and fsyncs the directory. On an error before the rename the
// temporary file is removed and the destination is untouched; an error
// after it (directory fsync) means the new file is in place but its
// durability is not known.
func (f *File) Commit() (err error) {
	if f.done {
		return fmt.Errorf("commit %s: %w", f.display, os.ErrClosed)
	}
	f.done = true
	defer f.closeRoot()
	err = f.fh.Sync()
	if cerr := f.fh.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = f.place()
	}
	if err != nil {
		_ = f.root.Remove(f.tmp)
		return fmt.Errorf("write %s: %w", f.display, err)
	}
	if err := syncDir(f.root, path.Dir(f.name)); err != nil {
		return fmt.Errorf("write %s: sync directory: %w", f.display, err)
	}
	return nil
}

// place puts the synced temporary file at the destination.
func (f *File) place() error {
	if !f.noReplace {
		return f.root.Rename(f.tmp, f.name)
	}
	if err := f.root.Link(f.tmp, f.name); err != nil {
		return err
	}
	// The destination is complete; a leftover link is only a stray
	// temporary file, as after a crash.
	_ = f.root.Remove(f.tmp)
	return nil
}

// Abort removes the temporary file; the destination is untouched. It is a
// no-op after Commit or Abort, so `defer f.Abort()` is safe.
func (f *File) Abort() error {
	if f.done {
		return nil
	}
	f.done = true
	defer f.closeRoot()
	_ = f.fh.Close() // removed next; a close error no longer matters
	if err := f.root.Remove(f.tmp); err != nil {
		return fmt.Errorf("remove the temporary file of %s: %w", f.display, err)
	}
	return nil
}

func (f *File) closeRoot() {
	if f.ownRoot {
		_ = f.root.Close()
	}
}

func syncDir(root *os.Root, dir string) error {
	d, err := root.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
