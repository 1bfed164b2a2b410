// Package enroll is the one place that decides who may join the fleet as
// what, and which of a node's certificates may speak for it. It holds rules
// only: pure functions over the stored node, the join token and the key in
// the request. The store runs them inside its transaction and persists the
// outcome; the API layer logs it.
//
// # Who may join as what
//
// A node's registered key is the public key of the newest certificate issued
// to it, kept as the SHA-256 of its DER SubjectPublicKeyInfo (KeyID). An
// enrollment carries a PKCS#10 CSR whose self-signature the API has checked:
// that signature is the agent's proof that it holds the private key of the
// CSR's public key. (A replayed CSR gives its sender a certificate only the
// key's holder can use.)
//
// Every enrollment needs a join token that is neither revoked nor expired.
// Then, for the name in the request:
//
//   - Not registered: a new node, with the token's labels. Uses one use.
//   - Registered, and the CSR's key is the node's registered key (RuleSameKey):
//     the same identity comes back, e.g. an agent whose certificate expired
//     while it was offline. The node keeps its ID and labels; its epoch moves
//     on, retiring every earlier certificate. Uses one use. Refused while the
//     node is quarantined.
//   - Registered, and the token was made for that node with
//     'forlockctl tokens create --for-node NAME' (RuleForNode): a replacement
//     host, on purpose. The node keeps its ID, labels and history, takes the
//     new key, and its epoch moves on, retiring the old identity and all its
//     certificates. A quarantine is lifted. Uses the token's one use.
//   - Registered, anything else: refused with ErrNameTaken, whose message
//     names the two ways out (a --for-node token, or removing the node).
//
// A for-node token enrolls only under its node's name, and only the node it
// was made for (not a later node of the same name). Labels never change from
// a later token.
//
// # A lost answer
//
// The store records which keys enrolled with each token. A request with the
// same token and key, for the node that key enrolled as and still holds
// (RuleRetry), is the agent retrying after its answer was lost: it gets the
// same node ID and a fresh certificate, and uses no further use, even when the
// token has none left (until the token expires or is revoked). Anything that
// is refused uses nothing.
//
// # One live certificate per node
//
// Certs holds the serial of the newest certificate issued to a node and of
// the one before it, which stays valid for a short grace after the renewal so
// that the agent can switch over. Every other certificate of the node's
// current epoch is superseded (ErrSuperseded): refused, and logged as a
// possible theft. A renewal from a superseded certificate quarantines the
// node: all its certificates are refused until a --for-node token enrolls it
// again.
package enroll

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
)

// Rule names the rule that decided an enrollment; it is logged.
type Rule string

// The rules under which an enrollment is accepted.
const (
	RuleNew     Rule = "new-node"
	RuleSameKey Rule = "same-key"
	RuleForNode Rule = "for-node"
	RuleRetry   Rule = "retry-same-token-and-key"
)

// Sentinel errors; the API maps them to status codes.
var (
	ErrTokenExpired = errors.New("join token expired")
	ErrTokenUsedUp  = errors.New("join token has no uses left")
	ErrTokenRevoked = errors.New("join token revoked")
	// ErrNameTaken refuses an enrollment under a registered node's name.
	ErrNameTaken = errors.New("enrollment refused")
	// ErrWrongNode refuses a for-node token used for another node.
	ErrWrongNode = errors.New("join token was made for another node")
	// ErrQuarantined refuses a quarantined node's key and certificates.
	ErrQuarantined = errors.New("node is quarantined")
	// ErrSuperseded refuses a certificate its node has replaced.
	ErrSuperseded = errors.New("certificate superseded by a newer one issued to this node")
)

// KeyID returns the registered-key fingerprint of a certificate's or CSR's
// public key: the hex SHA-256 of its DER SubjectPublicKeyInfo.
func KeyID(rawSubjectPublicKeyInfo []byte) string {
	sum := sha256.Sum256(rawSubjectPublicKeyInfo)
	return hex.EncodeToString(sum[:])
}

// CSRKeyID is KeyID of a CSR's public key.
func CSRKeyID(csr *x509.CertificateRequest) string { return KeyID(csr.RawSubjectPublicKeyInfo) }

// Node is what the rules need of a registered node.
type Node struct {
	ID          string
	Name        string
	KeyID       string // "" when unknown (enrolled before keys were recorded)
	Quarantined bool
}

// Token is what the rules need of a join token whose secret matched.
type Token struct {
	ID          string
	ForNodeName string // "" for a token that enrolls new nodes
	ForNodeID   string
	ExpiresAt   time.Time
	Revoked     bool
	MaxUses     uint32
	Uses        uint32
}

// Request is one enrollment as the rules see it.
type Request struct {
	Name  string
	KeyID string // KeyID of the CSR's public key
	Token Token
	// Node is the node registered under Name, nil if none.
	Node *Node
	// PriorNodeID is the node this token and key enrolled as before, "" if
	// they never did.
	PriorNodeID string
	Now         time.Time
}

// Decision is an accepted enrollment.
type Decision struct {
	Rule Rule
	// UseToken says whether the enrollment uses one of the token's uses.
	UseToken bool
	// NewKey says the node changes key: its old identity is retired.
	NewKey bool
	// Unquarantine lifts a quarantine.
	Unquarantine bool
}

// Decide applies the rules in the package comment.
func Decide(r Request) (Decision, error) {
	t := r.Token
	switch {
	case t.Revoked:
		return Decision{}, ErrTokenRevoked
	case !r.Now.Before(t.ExpiresAt):
		return Decision{}, ErrTokenExpired
	case t.ForNodeName != "" && t.ForNodeName != r.Name:
		return Decision{}, fmt.Errorf("%w: it replaces the host of node %s only, not %s", ErrWrongNode, t.ForNodeName, r.Name)
	}
	n := r.Node
	if n == nil {
		return charge(Decision{Rule: RuleNew}, t)
	}
	sameKey := n.KeyID != "" && n.KeyID == r.KeyID
	retry := sameKey && !n.Quarantined && r.PriorNodeID == n.ID
	switch {
	case t.ForNodeName != "" && t.ForNodeID != n.ID:
		return Decision{}, fmt.Errorf("%w: node %s was removed and enrolled again since the token was made: create a new one with 'forlockctl tokens create --for-node %s'",
			ErrWrongNode, n.Name, n.Name)
	case retry:
		return Decision{Rule: RuleRetry}, nil
	case t.ForNodeName != "":
		return charge(Decision{Rule: RuleForNode, NewKey: !sameKey, Unquarantine: n.Quarantined}, t)
	case sameKey && n.Quarantined:
		return Decision{}, fmt.Errorf("%w (%s) after a suspected certificate theft: to let a host in again, create a token with 'forlockctl tokens create --for-node %s'",
			ErrQuarantined, n.Name, n.Name)
	case sameKey:
		return charge(Decision{Rule: RuleSameKey}, t)
	}
	return Decision{}, fmt.Errorf("%w: node %s is already enrolled with another key: to replace its host, create a token with 'forlockctl tokens create --for-node %s', or remove the node first with 'forlockctl nodes remove %s'",
		ErrNameTaken, n.Name, n.Name, n.Name)
}

// Refusal names the rule that refused an enrollment with err, for the log.
func Refusal(err error) string {
	for _, r := range []struct {
		err  error
		name string
	}{
		{ErrNameTaken, "refused-name-taken"}, {ErrWrongNode, "refused-token-for-another-node"},
		{ErrQuarantined, "refused-quarantined"}, {ErrTokenUsedUp, "refused-token-used-up"},
		{ErrTokenExpired, "refused-token-expired"}, {ErrTokenRevoked, "refused-token-revoked"},
		{context.DeadlineExceeded, "not-committed-caller-gone"}, {context.Canceled, "not-committed-caller-gone"},
	} {
		if errors.Is(err, r.err) {
			return r.name
		}
	}
	return "refused"
}

func charge(d Decision, t Token) (Decision, error) {
	if t.Uses >= t.MaxUses {
		return Decision{}, ErrTokenUsedUp
	}
	d.UseToken = true
	return d, nil
}
