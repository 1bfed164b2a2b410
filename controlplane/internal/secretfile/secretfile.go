// Package secretfile is the one check the control plane applies to every
// file holding a secret it reads (the fleet CA key, the server key, the
// backup key-encryption key, the admin credential in forlockctl.yaml, the
// database, the audit checkpoint key, the Vault token and AppRole secret-ID
// files, the S3 keys of scheduled snapshots): only its owner may access it. A file that group or others can
// read, write or run is refused with an error naming the file, its mode,
// what it holds and the chmod that fixes it; the control plane then does not
// start.
package secretfile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
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

// maxReadSize bounds what Read reads: tokens, secret IDs and access keys
// are short.
const maxReadSize = 4096

// Read reads a short secret (a token, a secret ID, an access key) from the
// file at path, without surrounding white space. It refuses a file that is
// not regular, that group or others may access, that is larger than 4 KiB
// or empty. what names the secret in errors, e.g. "vault token".
func Read(path, what string) (string, error) {
	f, err := os.Open(path) //nolint:gosec // G304: the operator names the file
	if err != nil {
		return "", fmt.Errorf("%s file: %w", what, err)
	}
	defer func() { _ = f.Close() }()
	st, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("%s file: %w", what, err)
	}
	if !st.Mode().IsRegular() {
		return "", fmt.Errorf("%s file %s: not a regular file", what, path)
	}
	if err := CheckInfo(path, st, "the "+what); err != nil {
		return "", fmt.Errorf("%s file: %w", what, err)
	}
	raw, err := io.ReadAll(io.LimitReader(f, maxReadSize+1))
	if err != nil {
		return "", fmt.Errorf("%s file %s: %w", what, path, err)
	}
	if len(raw) > maxReadSize {
		return "", fmt.Errorf("%s file %s: larger than %d bytes, not a %s", what, path, maxReadSize, what)
	}
	v := strings.TrimSpace(string(raw))
	if v == "" {
		return "", fmt.Errorf("%s file %s: empty: write the %s there", what, path, what)
	}
	return v, nil
}
