// Package snapshot is the control plane's own backup: one encrypted file
// holding everything a control plane needs to come back on a new host.
//
// A snapshot is an artifact (internal/artifact) of kind "snapshot": a fresh
// data key, zstd, AES-256-GCM streaming, SHA-256, the data key wrapped in
// the header by a keys.Wrapper (a passphrase through scrypt). Its plaintext
// is a tar stream:
//
//	manifest.json   Manifest: when the database was read, the files, their modes
//	fleet.db        the bbolt database, copied in one read transaction
//	                (bolt.Tx.WriteTo) while the server goes on serving
//	ca.crt ca.key server.crt server.key backup-kek.json audit.key
//	audit-checkpoints.jsonl forlockctl.yaml   as they are in the data dir
//	config.yaml     the control plane's --config file, if it has one
//
// Write builds the file into a temporary file of the data dir first, so the
// database's read transaction lasts as long as the local copy takes, never
// as long as a slow client's download.
//
// Restore is offline. What can go wrong, and what it does about it:
//   - wrong passphrase, damaged or truncated file: every segment is
//     authenticated as it is read, and everything is unpacked into a new
//     directory beside the data dir first; on any error that directory is
//     removed and the data dir is untouched;
//   - a hostile file: only the names in the fixed list below are accepted,
//     each once, regular files only, each at most maxFile bytes; modes are
//     taken from the manifest but never wider than 0644, keys always 0600;
//   - a data dir in use: Restore refuses a non-empty data dir unless forced,
//     and then renames it aside (never deletes it); a running control plane
//     holds the database's lock, so Restore refuses while one runs on it.
package snapshot

import (
	"archive/tar"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/forlock/fleet/controlplane/internal/datadir"
)

// Names in the snapshot's tar besides the data dir's files.
const (
	ManifestName = "manifest.json"
	DBName       = datadir.DB
	ConfigName   = "config.yaml"
)

// fileModes are the files a snapshot may hold and the widest mode each may
// be restored with.
var fileModes = func() map[string]int64 {
	m := map[string]int64{ManifestName: 0o600, DBName: 0o600, ConfigName: 0o600}
	for _, f := range datadir.Files {
		m[f.Name] = f.Mode
	}
	return m
}()

// maxFile bounds one file of a snapshot when restoring (the database aside),
// so a hostile file cannot fill the disk through a small compressed body.
const maxFile = 16 << 20

// maxDB bounds the database when restoring.
const maxDB = 64 << 30

// FormatVersion is the version of the manifest.
const FormatVersion = 1

// Manifest is the first entry of a snapshot.
type Manifest struct {
	Version int `json:"version"`
	// TakenAt is when the database was read.
	TakenAt time.Time `json:"taken_at"`
	// ServerVersion is the control plane's version.
	ServerVersion string `json:"server_version"`
	// BackupKeys is the control plane's backup key source ("local" or
	// "vault-transit"); with Vault Transit the key stays in Vault and
	// Vault records its non-secret configuration.
	BackupKeys string `json:"backup_keys"`
	// Vault is the control plane's Vault configuration without its
	// credentials (address, mounts, keys), or nil.
	Vault map[string]string `json:"vault,omitempty"`
	// Files are the tar entries after the manifest, with their modes.
	Files []FileInfo `json:"files"`
}

// FileInfo is one file of a snapshot.
type FileInfo struct {
	Name string `json:"name"`
	Mode uint32 `json:"mode"`
	Size int64  `json:"size"`
}

// ErrDataDirNotEmpty means the data dir given to Restore holds files.
var ErrDataDirNotEmpty = errors.New("data dir is not empty")

// ErrInUse means a control plane runs on the data dir.
var ErrInUse = errors.New("data dir is in use")

// writeEntry writes one tar entry of size bytes from body (a file's bytes,
// or the database's read transaction).
func writeEntry(tw *tar.Writer, name string, mode int64, size int64, at time.Time, body io.WriterTo) error {
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: mode, Size: size, ModTime: at, Typeflag: tar.TypeReg, Format: tar.FormatPAX}); err != nil {
		return fmt.Errorf("snapshot %s: %w", name, err)
	}
	if n, err := body.WriteTo(tw); err != nil {
		return fmt.Errorf("snapshot %s: %w", name, err)
	} else if n != size {
		return fmt.Errorf("snapshot %s: wrote %d bytes, want %d", name, n, size)
	}
	return nil
}

func encodeManifest(m Manifest) ([]byte, error) {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("snapshot manifest: %w", err)
	}
	return b, nil
}
