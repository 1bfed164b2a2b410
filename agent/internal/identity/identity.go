// Package identity keeps an agent's node identity in its state directory.
//
// The directory (mode 0700) holds:
//
//	node.key   PKCS#8 PEM private key, ECDSA P-256, generated on the host and never sent
//	node.crt   the client certificate followed by any intermediates, PEM
//	ca.pem     the fleet CA bundle the control plane handed out, PEM
//	node.json  {"node_id": "...", "name": "..."}
//
// Every file is written with atomicfile.Write (temporary file, fsync,
// rename, fsync of the directory) with mode 0600, so a crash leaves either
// the old or the new content. Nothing in this package ever deletes a file of the directory.
package identity

import (
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/forlock/fleet/internal/pki"
)

// File names inside the state directory.
const (
	KeyFile  = "node.key"
	CertFile = "node.crt"
	CAFile   = "ca.pem"
	NodeFile = "node.json"
)

// Modes of the state directory and of its files.
const (
	DirMode  = 0o700
	FileMode = 0o600
)

// maxFileSz bounds what Load reads of any file: larger ones are not ours.
const maxFileSz = 1 << 20

// ErrNotFound reports a state directory that holds no complete identity yet:
// the agent has to enroll.
var ErrNotFound = errors.New("no node identity in the state directory")

// Identity is a complete node identity.
type Identity struct {
	// NodeID is the stable node ID the control plane assigned.
	NodeID string
	// Name is the node name the identity was enrolled under.
	Name string
	// Key is the node's private key.
	Key *ecdsa.PrivateKey
	// Chain is the client certificate followed by any intermediates.
	Chain []*x509.Certificate
	// ChainPEM is Chain as stored.
	ChainPEM []byte
	// CAPEM is the fleet CA bundle as stored.
	CAPEM []byte
	// CAPool holds the certificates of CAPEM.
	CAPool *x509.CertPool
}

// Leaf returns the node's client certificate.
func (id *Identity) Leaf() *x509.Certificate { return id.Chain[0] }

// Serial returns the leaf certificate's serial number in lower-case hex.
func (id *Identity) Serial() string { return pki.SerialHex(id.Leaf()) }

// Expired reports whether the leaf certificate is past its NotAfter at now.
func (id *Identity) Expired(now time.Time) bool { return now.After(id.Leaf().NotAfter) }

// TLSCertificate returns the identity as a client certificate for crypto/tls.
func (id *Identity) TLSCertificate() *tls.Certificate {
	c := &tls.Certificate{PrivateKey: id.Key, Leaf: id.Leaf()}
	for _, cert := range id.Chain {
		c.Certificate = append(c.Certificate, cert.Raw)
	}
	return c
}

// Build checks what the control plane returned for key and assembles an
// Identity from it: the chain must parse, its leaf must carry key's public
// key and the node ID nodeID, and it must verify against the CA bundle as a
// client certificate at now.
func Build(nodeID, name string, key *ecdsa.PrivateKey, chainPEM, caPEM []byte, now time.Time) (*Identity, error) {
	id, err := assemble(nodeRecord{NodeID: nodeID, Name: name}, key, chainPEM, caPEM)
	if err != nil {
		return nil, err
	}
	leaf := id.Leaf()
	got, err := pki.NodeIdentity(leaf)
	if err != nil {
		return nil, fmt.Errorf("certificate: %w", err)
	}
	if got.ID != nodeID {
		return nil, fmt.Errorf("certificate names node %s, expected %s", got.ID, nodeID)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{
		Roots:         id.CAPool,
		Intermediates: poolOf(id.Chain[1:]),
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}); err != nil {
		return nil, fmt.Errorf("certificate does not verify against the fleet CA (is the host clock right?): %w", err)
	}
	return id, nil
}
