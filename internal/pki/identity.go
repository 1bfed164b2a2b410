package pki

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

const nodeURIPrefix = "forlock:node:"

// NodeID is the identity an agent certificate carries: the node's stable ID
// and the enrollment epoch it was issued under.
type NodeID struct {
	ID    string
	Epoch uint64
}

// URI returns the certificate URI SAN for the identity.
func (n NodeID) URI() *url.URL {
	return &url.URL{Scheme: "urn", Opaque: nodeURIPrefix + n.ID + ":" + strconv.FormatUint(n.Epoch, 10)}
}

// ErrNoNodeIdentity reports a certificate that carries no node identity.
var ErrNoNodeIdentity = errors.New("certificate carries no forlock node identity")

// NodeIdentity extracts the node identity from an agent certificate.
func NodeIdentity(cert *x509.Certificate) (NodeID, error) {
	var found []NodeID
	for _, u := range cert.URIs {
		if u.Scheme != "urn" || !strings.HasPrefix(u.Opaque, nodeURIPrefix) {
			continue
		}
		rest := strings.TrimPrefix(u.Opaque, nodeURIPrefix)
		id, epoch, ok := strings.Cut(rest, ":")
		if !ok || !ValidNodeID(id) {
			return NodeID{}, fmt.Errorf("%w: malformed URI %q", ErrNoNodeIdentity, u.String())
		}
		e, err := strconv.ParseUint(epoch, 10, 64)
		if err != nil {
			return NodeID{}, fmt.Errorf("%w: malformed epoch in %q", ErrNoNodeIdentity, u.String())
		}
		found = append(found, NodeID{ID: id, Epoch: e})
	}
	if len(found) != 1 {
		return NodeID{}, ErrNoNodeIdentity
	}
	return found[0], nil
}

// ValidNodeID reports whether s has the shape of a node ID: 32 lower-case
// hex digits.
func ValidNodeID(s string) bool {
	if len(s) != 32 {
		return false
	}
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// MaxNodeNameLen bounds a node name.
const MaxNodeNameLen = 63

// ValidateNodeName checks a node name: 1 to 63 lower-case letters, digits,
// '-' and '.', starting and ending with a letter or digit.
func ValidateNodeName(name string) error {
	if name == "" || len(name) > MaxNodeNameLen {
		return fmt.Errorf("node name %q must be 1 to %d characters", name, MaxNodeNameLen)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		alnum := (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')
		if !alnum && (i == 0 || i == len(name)-1 || (c != '-' && c != '.')) {
			return fmt.Errorf("node name %q: use lower-case letters, digits, '-' and '.', starting and ending with a letter or digit", name)
		}
	}
	return nil
}
