package store

import (
	"context"
	"crypto/subtle"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/forlock/fleet/controlplane/internal/enroll"
)

// Which keys enrolled with each join token (schema versions 1 and 2, bucket made on
// open), so that an agent retrying after a lost answer gets the same node
// without using the token again (enroll: RuleRetry):
//
//	token_uses/
//	  <token-id>/
//	    <key-id>  -> <node-id>   (key-id: enroll.KeyID of the CSR's key)
//
// One small key per enrollment, beside the token rather than inside its JSON,
// so that a token with many uses is not rewritten whole at every use.
var bucketTokenUses = []byte("token_uses")

// EnrollParams is an enrollment request after validation.
type EnrollParams struct {
	TokenID   string
	TokenHash []byte
	Name      string
	// KeyID is enroll.KeyID of the CSR's public key.
	KeyID string
	Now   time.Time
	// NewID returns a fresh node ID for a name not seen before.
	NewID func() string
}

// Enrolled is an enrollment committed.
type Enrolled struct {
	Node     Node
	Decision enroll.Decision
	// Token is the join token after the enrollment.
	Token JoinToken
	// RetiredKeyID is the node's registered key before, if the enrollment
	// replaced it (enroll: RuleForNode).
	RetiredKeyID string
}

// Enroll checks the join token, lets enroll.Decide rule on the request and
// persists its decision: a new node, or a registered one moved to a new
// identity epoch (which retires every earlier certificate). issue is called
// inside the transaction with the node as it will be stored and must sign its
// certificate. If anything fails, or ctx ends before the commit (the caller
// has gone and would never receive its certificate), nothing is written and
// the token keeps its use. Enrollments are serialised by bbolt's single
// writer, so two callers racing for a token's last use cannot both succeed.
func (s *Store) Enroll(ctx context.Context, p EnrollParams, issue func(n Node) (Issued, error)) (Enrolled, error) {
	var out Enrolled
	err := s.db.Update(func(tx *bolt.Tx) error {
		if err := ctx.Err(); err != nil {
			return err // waited too long for the write lock: the caller has gone
		}
		tok, err := tokenByHash(tx, p.TokenID, p.TokenHash)
		if err != nil {
			return err
		}
		nodes, names := tx.Bucket(bucketNodes), tx.Bucket(bucketNodeNames)
		uses, err := tx.Bucket(bucketTokenUses).CreateBucketIfNotExists([]byte(tok.ID))
		if err != nil {
			return err
		}
		req := enroll.Request{Name: p.Name, KeyID: p.KeyID, Token: tok.rules(), Now: p.Now,
			PriorNodeID: string(uses.Get([]byte(p.KeyID)))}
		var n Node
		if id := names.Get([]byte(p.Name)); id != nil {
			if err := getJSON(nodes, string(id), &n); err != nil {
				return fmt.Errorf("node %s named %q: %w", id, p.Name, err)
			}
			req.Node = &enroll.Node{ID: n.ID, Name: n.Name, KeyID: n.KeyID, Quarantined: n.Quarantined()}
		}
		d, err := enroll.Decide(req)
		if err != nil {
			return err
		}
		if req.Node == nil {
			n = Node{ID: p.NewID(), Name: p.Name, EnrolledAt: p.Now, State: StateEnrolled, StateChangedAt: p.Now, Labels: tok.Labels}
		}
		out.Decision = d
		if d.NewKey {
			out.RetiredKeyID = n.KeyID
		}
		if d.Unquarantine {
			n.QuarantinedAt, n.QuarantineReason = time.Time{}, ""
		}
		n.Epoch++
		n.Enrollments++
		n.LastEnrolledAt = p.Now
		iss, err := issue(n)
		if err != nil {
			return err
		}
		n.setCerts(enroll.Certs{Newest: iss.Serial}) // a new epoch: no earlier certificate is valid
		n.CertNotAfter, n.KeyID = iss.NotAfter, p.KeyID
		if d.UseToken {
			tok.Uses++
		}
		if err := putJSON(nodes, n.ID, n); err != nil {
			return err
		}
		if err := names.Put([]byte(n.Name), []byte(n.ID)); err != nil {
			return err
		}
		if err := uses.Put([]byte(p.KeyID), []byte(n.ID)); err != nil {
			return err
		}
		if err := putJSON(tx.Bucket(bucketTokens), tok.ID, tok); err != nil {
			return err
		}
		out.Node, out.Token = n, tok
		return ctx.Err() // last chance to leave the use uncharged
	})
	if err != nil {
		return Enrolled{}, err
	}
	return out, nil
}

// tokenByHash returns the token with the given ID if hash is its secret's.
func tokenByHash(tx *bolt.Tx, id string, hash []byte) (JoinToken, error) {
	var t JoinToken
	if err := getJSON(tx.Bucket(bucketTokens), id, &t); err != nil {
		return JoinToken{}, ErrTokenUnknown
	}
	if subtle.ConstantTimeCompare(t.Hash, hash) != 1 {
		return JoinToken{}, ErrTokenUnknown
	}
	return t, nil
}

func (t *JoinToken) rules() enroll.Token {
	return enroll.Token{ID: t.ID, ForNodeName: t.ForNodeName, ForNodeID: t.ForNodeID, ExpiresAt: t.ExpiresAt,
		Revoked: !t.RevokedAt.IsZero(), MaxUses: t.MaxUses, Uses: t.Uses}
}
