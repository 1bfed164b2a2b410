package audit

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"time"

	"github.com/forlock/fleet/controlplane/internal/secretfile"
	"github.com/forlock/fleet/internal/atomicfile"
)

// KeyHolds says what the key file holds, for secretfile errors.
const KeyHolds = "the audit checkpoint signing key"

// Key signs checkpoints. It is not the fleet CA key: a leak of one does not
// give the other.
type Key struct {
	priv ed25519.PrivateKey
	// ID names the key in checkpoints: the first 8 bytes of the SHA-256 of
	// its public key, hex.
	ID string
}

// Public returns the verifying half.
func (k *Key) Public() ed25519.PublicKey { return k.priv.Public().(ed25519.PublicKey) }

// LoadOrCreateKey reads the key at path, or makes one there (mode 0600) on
// first start. A key file group or others can read is refused.
func LoadOrCreateKey(path string) (*Key, error) {
	if err := secretfile.Check(path, KeyHolds); err != nil {
		return nil, err
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return createKey(path)
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", KeyHolds, err)
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("%s: not a PEM private key: restore it from the control plane's backup", path)
	}
	parsed, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	priv, ok := parsed.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%s: not an Ed25519 key", path)
	}
	return newKey(priv), nil
}

func createKey(path string) (*Key, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("make audit key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("encode audit key: %w", err)
	}
	if err := atomicfile.WriteNew(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return nil, fmt.Errorf("write %s: %w", KeyHolds, err)
	}
	return newKey(priv), nil
}

func newKey(priv ed25519.PrivateKey) *Key {
	return &Key{priv: priv, ID: KeyID(priv.Public().(ed25519.PublicKey))}
}

// KeyID names a public key in checkpoints.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// Checkpoint is a signed statement of the chain at one record: "record Seq
// has chain hash Hash".
type Checkpoint struct {
	Seq   uint64    `json:"seq"`
	Hash  string    `json:"hash"`
	Time  time.Time `json:"time"`
	KeyID string    `json:"key_id"`
	Sig   []byte    `json:"sig"`
}

func (c *Checkpoint) message() []byte {
	return []byte("forlock-audit-checkpoint/v1\n" + strconv.FormatUint(c.Seq, 10) + "\n" + c.Hash + "\n" + c.Time.UTC().Format(time.RFC3339Nano) + "\n" + c.KeyID + "\n")
}

func (k *Key) sign(seq uint64, hash []byte, now time.Time) Checkpoint {
	c := Checkpoint{Seq: seq, Hash: hex.EncodeToString(hash), Time: now.UTC(), KeyID: k.ID}
	c.Sig = ed25519.Sign(k.priv, c.message())
	return c
}

// check verifies the checkpoint's signature with pub.
func (c *Checkpoint) check(pub ed25519.PublicKey) error {
	if c.KeyID != KeyID(pub) {
		return fmt.Errorf("checkpoint at record %d is signed by key %s, not by this control plane's audit key %s", c.Seq, c.KeyID, KeyID(pub))
	}
	if !ed25519.Verify(pub, c.message(), c.Sig) {
		return fmt.Errorf("checkpoint at record %d has a bad signature: it was not written by this control plane", c.Seq)
	}
	return nil
}

func decodeCheckpoint(v []byte) (Checkpoint, error) {
	var c Checkpoint
	err := json.Unmarshal(v, &c)
	return c, err
}
