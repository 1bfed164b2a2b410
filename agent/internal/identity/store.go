package identity

import (
	"bytes"
	"crypto/ecdsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/forlock/fleet/internal/atomicfile"
	"github.com/forlock/fleet/internal/pki"
)

// Store is a state directory.
type Store struct {
	dir string
}

// nodeRecord is the content of node.json.
type nodeRecord struct {
	NodeID string `json:"node_id"`
	Name   string `json:"name"`
}

// Open creates the state directory if needed (mode 0700, like any missing
// parent) and tightens its mode to 0700 if it is looser.
func Open(dir string) (*Store, error) {
	if dir == "" {
		return nil, errors.New("state directory is not set")
	}
	if err := os.MkdirAll(dir, DirMode); err != nil {
		return nil, fmt.Errorf("create state directory: %w", err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("state directory %s is not a directory", dir)
	}
	if fi.Mode().Perm() != DirMode {
		if err := os.Chmod(dir, DirMode); err != nil {
			return nil, fmt.Errorf("restrict state directory to mode 0700: %w", err)
		}
	}
	return &Store{dir: dir}, nil
}

// Dir returns the state directory.
func (s *Store) Dir() string { return s.dir }

func (s *Store) path(name string) string { return filepath.Join(s.dir, name) }

// Load reads the identity. It returns an error wrapping ErrNotFound if a file
// is missing, and another error if a file exists but is unreadable or
// damaged: such a directory needs an operator, not a silent re-enrollment.
func (s *Store) Load() (*Identity, error) {
	key, err := s.LoadKey()
	if err != nil {
		return nil, err
	}
	raw, err := s.read(NodeFile)
	if err != nil {
		return nil, err
	}
	var rec nodeRecord
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rec); err != nil {
		return nil, fmt.Errorf("%s: %w", s.path(NodeFile), err)
	}
	chainPEM, err := s.read(CertFile)
	if err != nil {
		return nil, err
	}
	caPEM, err := s.read(CAFile)
	if err != nil {
		return nil, err
	}
	id, err := assemble(rec, key, chainPEM, caPEM)
	if err != nil {
		return nil, fmt.Errorf("state directory %s: %w", s.dir, err)
	}
	return id, nil
}

// assemble is Build without the verification against time and CA: a stored
// identity is loaded even when its certificate expired, so that the agent
// can tell the operator and re-enroll under the same name.
func assemble(rec nodeRecord, key *ecdsa.PrivateKey, chainPEM, caPEM []byte) (*Identity, error) {
	if !pki.ValidNodeID(rec.NodeID) {
		return nil, fmt.Errorf("%s: node_id %q is malformed", NodeFile, rec.NodeID)
	}
	chain, err := pki.ParseCertsPEM(chainPEM)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", CertFile, err)
	}
	if !key.PublicKey.Equal(chain[0].PublicKey) {
		return nil, fmt.Errorf("%s does not match %s", CertFile, KeyFile)
	}
	cas, err := pki.ParseCertsPEM(caPEM)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", CAFile, err)
	}
	id := &Identity{NodeID: rec.NodeID, Name: rec.Name, Key: key, Chain: chain, ChainPEM: chainPEM, CAPEM: caPEM}
	id.CAPool = poolOf(cas)
	return id, nil
}

// LoadKey reads node.key. A missing key wraps ErrNotFound.
func (s *Store) LoadKey() (*ecdsa.PrivateKey, error) {
	raw, err := s.read(KeyFile)
	if err != nil {
		return nil, err
	}
	key, err := pki.ParseKeyPEM(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.path(KeyFile), err)
	}
	return key, nil
}

// LoadOrCreateKey returns the stored key, or generates and stores a new one
// if there is none yet.
func (s *Store) LoadOrCreateKey() (key *ecdsa.PrivateKey, created bool, err error) {
	key, err = s.LoadKey()
	if err == nil || !errors.Is(err, ErrNotFound) {
		return key, false, err
	}
	if key, err = pki.GenerateKey(); err != nil {
		return nil, false, fmt.Errorf("generate node key: %w", err)
	}
	pemKey, err := pki.EncodeKeyPEM(key)
	if err != nil {
		return nil, false, err
	}
	if err := atomicfile.Write(s.path(KeyFile), pemKey, FileMode); err != nil {
		return nil, false, fmt.Errorf("store node key: %w", err)
	}
	return key, true, nil
}

// Save stores a complete identity built by Build. The certificate and CA
// bundle are written before node.json so that Load never pairs a new node ID
// with an old certificate.
func (s *Store) Save(id *Identity) error {
	if err := s.SaveCertificate(id.ChainPEM, id.CAPEM); err != nil {
		return err
	}
	rec, err := json.MarshalIndent(nodeRecord{NodeID: id.NodeID, Name: id.Name}, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", NodeFile, err)
	}
	if err := atomicfile.Write(s.path(NodeFile), append(rec, '\n'), FileMode); err != nil {
		return fmt.Errorf("store %s: %w", NodeFile, err)
	}
	return nil
}

// SaveCertificate replaces node.crt and ca.pem, after a renewal.
func (s *Store) SaveCertificate(chainPEM, caPEM []byte) error {
	if err := atomicfile.Write(s.path(CertFile), chainPEM, FileMode); err != nil {
		return fmt.Errorf("store %s: %w", CertFile, err)
	}
	if err := atomicfile.Write(s.path(CAFile), caPEM, FileMode); err != nil {
		return fmt.Errorf("store %s: %w", CAFile, err)
	}
	return nil
}

func (s *Store) read(name string) ([]byte, error) {
	p := s.path(name)
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s is missing", ErrNotFound, p)
	}
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	data, err := io.ReadAll(io.LimitReader(f, maxFileSz+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	if len(data) > maxFileSz {
		return nil, fmt.Errorf("%s is larger than %d bytes: not an agent state file", p, maxFileSz)
	}
	return data, nil
}
