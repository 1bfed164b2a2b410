package snapshot

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/forlock/fleet/internal/artifact"
	"github.com/forlock/fleet/internal/keys"
)

// RestoreOptions are the inputs of Restore.
type RestoreOptions struct {
	// File is the snapshot file.
	File string
	// DataDir is where the control plane's state goes.
	DataDir string
	// Keys unwrap the snapshot's data key: its passphrase or its Vault
	// Transit key.
	Keys Keys
	// Force restores over a non-empty data dir, which is renamed aside to
	// <data-dir>.before-restore-<time>, never deleted.
	Force bool
	// Mark, if set, is called with the restored database's path before the
	// new data dir is put in place (it marks the restored state); its error
	// aborts the restore.
	Mark func(dbPath string, m Manifest) error
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Restored describes a restore.
type Restored struct {
	Manifest Manifest
	// Aside is where the previous data dir went, or "".
	Aside string
}

// Restore unpacks a snapshot into opts.DataDir. See the package doc for
// what it checks; on error the data dir is as it was. The data key is
// unwrapped before anything is written, so a wrong passphrase or a Vault
// that cannot unwrap leaves no trace.
func Restore(ctx context.Context, opts RestoreOptions) (Restored, error) {
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	dir, err := filepath.Abs(opts.DataDir)
	if err != nil {
		return Restored{}, fmt.Errorf("data dir: %w", err)
	}
	empty, err := checkTarget(dir, opts.Force)
	if err != nil {
		return Restored{}, err
	}
	f, err := os.Open(opts.File)
	if err != nil {
		return Restored{}, fmt.Errorf("snapshot: %w", err)
	}
	defer func() { _ = f.Close() }()
	var missing error
	h, body, err := artifact.Open(f, opts.Keys.unwrapFunc(ctx, &missing))
	if missing != nil {
		err = missing
	}
	if err != nil {
		return Restored{}, fmt.Errorf("snapshot %s: %w", opts.File, explain(err, h.KeyID))
	}
	defer func() { _ = body.Close() }()
	if h.Kind != artifact.KindSnapshot {
		return Restored{}, fmt.Errorf("snapshot %s: it is a %s backup artifact, not a control-plane snapshot", opts.File, h.Kind)
	}
	stamp := now().UTC().Format("20060102T150405Z")
	staging := dir + ".restoring-" + stamp
	if err := os.MkdirAll(filepath.Dir(dir), 0o700); err != nil {
		return Restored{}, fmt.Errorf("restore: %w", err)
	}
	if err := os.Mkdir(staging, 0o700); err != nil {
		return Restored{}, fmt.Errorf("restore: staging dir: %w", err)
	}
	m, err := unpack(body, staging)
	if err != nil {
		err = fmt.Errorf("snapshot %s: %w", opts.File, explain(err, h.KeyID))
	}
	if err == nil && opts.Mark != nil {
		err = opts.Mark(filepath.Join(staging, DBName), m)
	}
	if err != nil {
		_ = os.RemoveAll(staging)
		return Restored{}, err
	}
	out := Restored{Manifest: m}
	switch {
	case empty:
		if err := os.Remove(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
			_ = os.RemoveAll(staging)
			return Restored{}, fmt.Errorf("restore: %w", err)
		}
	default:
		out.Aside = dir + ".before-restore-" + stamp
		if err := os.Rename(dir, out.Aside); err != nil {
			_ = os.RemoveAll(staging)
			return Restored{}, fmt.Errorf("restore: move the old data dir aside: %w", err)
		}
	}
	if err := os.Rename(staging, dir); err != nil {
		return out, fmt.Errorf("restore: put %s in place of %s: %w (the restored state is in %s)", staging, dir, err, staging)
	}
	return out, nil
}

// checkTarget reports whether dir is missing or empty, and refuses a
// non-empty one unless force, and one a control plane runs on.
func checkTarget(dir string, force bool) (bool, error) {
	ents, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return true, nil
	case err != nil:
		return false, fmt.Errorf("data dir: %w", err)
	case len(ents) == 0:
		return true, nil
	case !force:
		return false, fmt.Errorf("%w: %s holds %d entries; restore into a new directory, or give --force to move it aside (it is kept, never deleted)", ErrDataDirNotEmpty, dir, len(ents))
	}
	db := filepath.Join(dir, DBName)
	if _, err := os.Stat(db); err == nil {
		// A running control plane holds the database's exclusive lock.
		b, err := bolt.Open(db, 0o600, &bolt.Options{Timeout: time.Second, ReadOnly: true})
		if err != nil {
			return false, fmt.Errorf("%w: cannot lock %s (%w): stop the control plane first", ErrInUse, db, err)
		}
		_ = b.Close()
	}
	return false, nil
}

// unpack reads the snapshot's plaintext, body, and writes its files into
// dir.
func unpack(body io.Reader, dir string) (Manifest, error) {
	tr := tar.NewReader(body)
	var m Manifest
	seen := map[string]bool{}
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return Manifest{}, err
		}
		name := hdr.Name
		limit, ok := fileModes[name]
		if !ok || seen[name] || hdr.Typeflag != tar.TypeReg {
			return Manifest{}, fmt.Errorf("unexpected entry %q: not a control-plane snapshot", name)
		}
		seen[name] = true
		if len(seen) == 1 != (name == ManifestName) {
			return Manifest{}, fmt.Errorf("the manifest must come first")
		}
		maxSize := int64(maxFile)
		if name == DBName {
			maxSize = maxDB
		}
		if hdr.Size < 0 || hdr.Size > maxSize {
			return Manifest{}, fmt.Errorf("%s of %d bytes is over the limit", name, hdr.Size)
		}
		if name == ManifestName {
			b, err := io.ReadAll(io.LimitReader(tr, maxFile))
			if err != nil {
				return Manifest{}, err
			}
			if err := json.Unmarshal(b, &m); err != nil || m.Version != FormatVersion {
				return Manifest{}, fmt.Errorf("manifest unreadable or of another version (%d): use the forlock-controlplane that made it", m.Version)
			}
		}
		mode := fs.FileMode(hdr.Mode) & fs.FileMode(limit) //nolint:gosec // masked to 0644 at most
		// name is one of the fixed names of fileModes: never a path.
		if err := writeFile(filepath.Join(dir, name), tr, mode); err != nil { //nolint:gosec // G305: see above
			return Manifest{}, err
		}
	}
	// Read to the end, so the final segment is authenticated: a file cut
	// after the tar's last entry is refused too.
	if _, err := io.Copy(io.Discard, body); err != nil {
		return Manifest{}, err
	}
	if !seen[DBName] || !seen[ManifestName] {
		return Manifest{}, fmt.Errorf("no database in it")
	}
	for _, fi := range m.Files {
		if !seen[fi.Name] {
			return Manifest{}, fmt.Errorf("%s is in its manifest but not in the file", fi.Name)
		}
	}
	return m, nil
}

func writeFile(path string, r io.Reader, mode fs.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode) //nolint:gosec // G304: a fixed name in the staging dir
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// explain turns the artifact's errors into what an operator should do;
// keyID is the snapshot's.
func explain(err error, keyID string) error {
	switch {
	case errors.Is(err, ErrNeedPassphrase), errors.Is(err, ErrNeedVault), errors.Is(err, ErrKeyUnavailable):
		return err
	case errors.Is(err, artifact.ErrWrongKey) && strings.HasPrefix(keyID, keys.TransitKeyIDPrefix):
		return fmt.Errorf("vault did not unwrap the data key with the Transit key %s (not the Vault or key this snapshot was made with, or a damaged file): %w", keyID, err)
	case errors.Is(err, artifact.ErrWrongKey):
		return fmt.Errorf("wrong passphrase (or not the key this snapshot was made with): %w", err)
	case errors.Is(err, artifact.ErrTruncated), errors.Is(err, artifact.ErrCorrupted):
		return fmt.Errorf("the file is damaged or incomplete: use another copy: %w", err)
	}
	return err
}
