package snapshot

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/forlock/fleet/controlplane/internal/datadir"
	"github.com/forlock/fleet/internal/artifact"
	"github.com/forlock/fleet/internal/keys"
)

// DB is the database a snapshot copies: SnapshotView calls fn inside one read
// transaction with the size of the copy and the transaction, which writes
// exactly that many bytes (bolt.Tx).
type DB interface {
	SnapshotView(fn func(size int64, copy io.WriterTo) error) error
}

// Config is what a Saver copies.
type Config struct {
	// DataDir holds the key files (datadir.Files) and is where Spool keeps
	// its temporary file.
	DataDir string
	// DB is the database.
	DB DB
	// ConfigFile is the control plane's config file, or "".
	ConfigFile string
	// Name is the control plane's name in the artifact header (a node name).
	Name string
	// ServerVersion, BackupKeys and Vault go into the manifest.
	ServerVersion string
	BackupKeys    string
	Vault         map[string]string
	// Transit gives the Vault Transit keys a snapshot may be encrypted
	// to; nil when the control plane has no Vault.
	Transit TransitFunc
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Saver makes snapshots.
type Saver struct {
	cfg Config
}

// NewSaver returns a Saver of cfg.
func NewSaver(cfg Config) (*Saver, error) {
	if cfg.DataDir == "" || cfg.DB == nil || cfg.Name == "" {
		return nil, errors.New("snapshot: data dir, database and name are required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Saver{cfg: cfg}, nil
}

// Result describes a snapshot written.
type Result struct {
	// TakenAt is when the database was read.
	TakenAt time.Time
	// Size and SHA256 (hex) are of the whole file.
	Size   int64
	SHA256 string
	// KeyID names the key that wrapped the data key.
	KeyID string
	// FileName is the snapshot's name in its header: FileName of when
	// it was made.
	FileName string
}

// What FileName puts around the time.
const (
	namePrefix = "controlplane-"
	nameSuffix = ".snap"
)

// FileName is the name of a snapshot taken at t, in UTC:
// controlplane-20261203T021500Z.snap.
func FileName(t time.Time) string {
	return namePrefix + t.UTC().Format("20060102T150405Z") + nameSuffix
}

// Save writes a snapshot encrypted with a fresh data key wrapped by w
// (Wrapper) to dst. dst holds a valid snapshot only when Save returns nil;
// the key is wrapped before anything is written.
func (s *Saver) Save(ctx context.Context, w keys.Wrapper, dst io.Writer) (Result, error) {
	files, err := s.readFiles()
	if err != nil {
		return Result{}, err
	}
	dataKey, err := keys.NewDataKey()
	if err != nil {
		return Result{}, err
	}
	wrapped, err := w.Wrap(ctx, dataKey)
	if err != nil {
		return Result{}, fmt.Errorf("%w: snapshot: wrap its data key with %s: %w", ErrKeyUnavailable, w.KeyID(), err)
	}
	created := s.cfg.Now().UTC()
	aw, err := artifact.NewWriter(dst, artifact.Header{Kind: artifact.KindSnapshot, Node: s.cfg.Name, Created: created,
		KeyID: w.KeyID(), WrappedKey: wrapped, FileName: FileName(created)}, dataKey)
	if err != nil {
		return Result{}, fmt.Errorf("snapshot: %w", err)
	}
	tw := tar.NewWriter(aw)
	var taken time.Time
	err = s.cfg.DB.SnapshotView(func(size int64, db io.WriterTo) error {
		taken = s.cfg.Now().UTC()
		m := Manifest{Version: FormatVersion, TakenAt: taken, ServerVersion: s.cfg.ServerVersion,
			BackupKeys: s.cfg.BackupKeys, Vault: s.cfg.Vault, Files: []FileInfo{{Name: DBName, Mode: 0o600, Size: size}}}
		for _, f := range files {
			m.Files = append(m.Files, f.FileInfo)
		}
		mb, err := encodeManifest(m)
		if err != nil {
			return err
		}
		if err := writeEntry(tw, ManifestName, 0o600, int64(len(mb)), taken, bytes.NewReader(mb)); err != nil {
			return err
		}
		return writeEntry(tw, DBName, 0o600, size, taken, db)
	})
	if err != nil {
		_ = aw.Close()
		return Result{}, err
	}
	for _, f := range files {
		if err := writeEntry(tw, f.Name, int64(f.Mode), f.Size, taken, bytes.NewReader(f.data)); err != nil {
			_ = aw.Close()
			return Result{}, err
		}
	}
	if err := tw.Close(); err != nil {
		_ = aw.Close()
		return Result{}, fmt.Errorf("snapshot: %w", err)
	}
	if err := aw.Close(); err != nil {
		return Result{}, fmt.Errorf("snapshot: %w", err)
	}
	return Result{TakenAt: taken, Size: aw.Size(), SHA256: aw.SHA256(), KeyID: w.KeyID(), FileName: FileName(created)}, nil
}

// Spool saves a snapshot into an unnamed temporary file of the data dir
// (created 0600 and unlinked at once, so nothing is left behind by a crash)
// and returns it positioned at its start; the caller closes it. The
// database's transaction lasts as long as the local copy, not as long as
// the caller's reader.
func (s *Saver) Spool(ctx context.Context, w keys.Wrapper) (*os.File, Result, error) {
	f, err := os.CreateTemp(s.cfg.DataDir, ".snapshot-*.tmp")
	if err != nil {
		return nil, Result{}, fmt.Errorf("snapshot: temporary file: %w", err)
	}
	if err := os.Remove(f.Name()); err != nil {
		_ = f.Close()
		return nil, Result{}, fmt.Errorf("snapshot: temporary file: %w", err)
	}
	res, err := s.Save(ctx, w, f)
	if err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	if err != nil {
		_ = f.Close()
		return nil, Result{}, err
	}
	return f, res, nil
}

type fileData struct {
	FileInfo
	data []byte
}

// readFiles reads the data dir's key files and the config file.
func (s *Saver) readFiles() ([]fileData, error) {
	var out []fileData
	add := func(name, path string) error {
		st, err := os.Stat(path)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("snapshot: %w", err)
		}
		if !st.Mode().IsRegular() || st.Size() > maxFile {
			return fmt.Errorf("snapshot: %s is not a regular file of at most %d bytes", path, maxFile)
		}
		b, err := os.ReadFile(path) //nolint:gosec // G304: a fixed name in the data dir or the configured config file
		if err != nil {
			return fmt.Errorf("snapshot: %w", err)
		}
		out = append(out, fileData{FileInfo: FileInfo{Name: name, Mode: uint32(st.Mode().Perm()), Size: int64(len(b))}, data: b})
		return nil
	}
	for _, f := range datadir.Files {
		name := f.Name
		if err := add(name, filepath.Join(s.cfg.DataDir, name)); err != nil {
			return nil, err
		}
	}
	if s.cfg.ConfigFile != "" {
		if err := add(ConfigName, s.cfg.ConfigFile); err != nil {
			return nil, err
		}
	}
	return out, nil
}
