package walarchive

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/forlock/fleet/internal/atomicfile"
	"github.com/forlock/fleet/internal/keys"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// KeyFileName is the archive key's file in the agent's state directory.
const KeyFileName = "archive-key.json"

// ErrNoKey means no archive key has arrived yet: archiving waits for the
// first connection to the control plane after enrollment.
var ErrNoKey = errors.New("no WAL archive key yet: the control plane sends one once the agent connects")

// keyJSON is the key file, mode 0600:
//
//	{"key_id":"archive:<node>:20261203T180000Z","key":"<base64>","created_at":"…"}
type keyJSON struct {
	KeyID     string    `json:"key_id"`
	Key       []byte    `json:"key"`
	CreatedAt time.Time `json:"created_at"`
}

// KeyStore holds the newest archive key, in memory and in its file. Safe
// for concurrent use.
type KeyStore struct {
	path string
	mu   sync.Mutex
	cur  *keys.File
	at   time.Time
}

// OpenKeyStore loads the key file in dir if there is one. A file readable
// by others is refused, as the local key file is.
func OpenKeyStore(dir string) (*KeyStore, error) {
	ks := &KeyStore{path: filepath.Join(dir, KeyFileName)}
	fi, err := os.Stat(ks.path)
	if errors.Is(err, fs.ErrNotExist) {
		return ks, nil
	}
	if err != nil {
		return nil, fmt.Errorf("archive key: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("archive key %s: %w (mode %v): chmod 600 it", ks.path, keys.ErrInsecureKeyFile, fi.Mode().Perm())
	}
	raw, err := os.ReadFile(ks.path)
	if err != nil {
		return nil, fmt.Errorf("archive key: %w", err)
	}
	var kj keyJSON
	if err := json.Unmarshal(raw, &kj); err != nil {
		return nil, fmt.Errorf("archive key %s: damaged: %w", ks.path, err)
	}
	f, err := keys.NewNamed(kj.KeyID, kj.Key)
	if err != nil {
		return nil, fmt.Errorf("archive key %s: %w", ks.path, err)
	}
	ks.cur, ks.at = f, kj.CreatedAt
	return ks, nil
}

// Set keeps k if it is newer than the key held (by creation time; the same
// ID again is a no-op) and writes it to the file first, so a key in use is
// always on disk.
func (ks *KeyStore) Set(k *forlockv1.ArchiveKey) error {
	f, err := keys.NewNamed(k.GetKeyId(), k.GetPlainKey())
	if err != nil {
		return fmt.Errorf("archive key from the control plane: %w", err)
	}
	at := k.GetCreatedAt().AsTime()
	ks.mu.Lock()
	defer ks.mu.Unlock()
	if ks.cur != nil && (ks.cur.KeyID() == k.GetKeyId() || at.Before(ks.at)) {
		return nil
	}
	raw, err := json.Marshal(keyJSON{KeyID: k.GetKeyId(), Key: k.GetPlainKey(), CreatedAt: at})
	if err != nil {
		return err
	}
	if err := atomicfile.Write(ks.path, raw, 0o600); err != nil {
		return fmt.Errorf("save the archive key: %w", err)
	}
	ks.cur, ks.at = f, at
	return nil
}

// Current returns the key to wrap new files' data keys with.
func (ks *KeyStore) Current() (*keys.File, error) {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	if ks.cur == nil {
		return nil, ErrNoKey
	}
	return ks.cur, nil
}
