// Package secretfile is the one check the control plane applies to every
// file holding a secret it reads (the fleet CA key, the server key, the
// backup key-encryption key, the admin credential in forlockctl.yaml, the
// database, the audit checkpoint key, the Vault token and AppRole secret-ID
// files): only its owner may access it. A file that group or others can
// read, write or run is refused with an error naming the file, its mode,
// what it holds and the chmod that fixes it; the control plane then does not
// start.
package secretfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// ErrExposed is wrapped by every refusal, for errors.Is.
var ErrExposed = errors.New("secret file accessible by group or others")

// ExposedError is a secret file whose mode lets group or others at it.
type ExposedError struct {
	Path  string
	Mode  fs.FileMode
	Holds string // what the file holds, e.g. "the fleet CA key"
}

func (e *ExposedError) Error() string {
	return fmt.Sprintf("%s has mode %04o: it holds %s; run chmod 600 %s", e.Path, e.Mode.Perm(), e.Holds, e.Path)
}

// Unwrap makes errors.Is(err, ErrExposed) true.
func (e *ExposedError) Unwrap() error { return ErrExposed }

// CheckInfo checks the mode of the file at path, described by st.
func CheckInfo(path string, st fs.FileInfo, holds string) error {
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return &ExposedError{Path: path, Mode: perm, Holds: holds}
	}
	return nil
}

// Check checks the file at path (a symbolic link is followed: the mode of
// what is read counts). A missing file is not an error: the caller creates
// it with mode 0600 or reports it missing in its own words.
func Check(path, holds string) error {
	st, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("check %s (%s): %w", path, holds, err)
	}
	return CheckInfo(path, st, holds)
}
