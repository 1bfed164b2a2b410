// Package tokens makes and checks the control plane's bearer secrets: join
// tokens for enrollment, the admin token (the bootstrap identity) and the
// secrets of the identities operators and programs call the API with.
//
// A secret is a type prefix and 32 random bytes in unpadded base64url, e.g.
// "fjt_" + 43 characters. Only its SHA-256 is ever stored; a plain hash is
// enough because the secret has 256 bits of entropy. A join token's ID is the
// first 12 hex digits of that hash, so it can be shown and logged safely.
package tokens

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// Secret prefixes.
const (
	JoinPrefix   = "fjt_"
	AdminPrefix  = "fat_"
	AccessPrefix = "fac_" // an identity's secret (forlockctl access create)
)

const secretBytes = 32

// ErrMalformed reports a string that is not a token of the expected kind.
var ErrMalformed = errors.New("malformed token")

// Token is a freshly made secret with its hash and ID.
type Token struct {
	Secret string
	Hash   []byte
	ID     string
}

// NewJoin returns a fresh join token.
func NewJoin() (Token, error) { return newToken(JoinPrefix) }

// NewAdmin returns a fresh admin token.
func NewAdmin() (Token, error) { return newToken(AdminPrefix) }

func newToken(prefix string) (Token, error) {
	b := make([]byte, secretBytes)
	if _, err := rand.Read(b); err != nil {
		return Token{}, fmt.Errorf("random token: %w", err)
	}
	secret := prefix + base64.RawURLEncoding.EncodeToString(b)
	h := sha256.Sum256([]byte(secret))
	return Token{Secret: secret, Hash: h[:], ID: hex.EncodeToString(h[:6])}, nil
}

// NewAccess returns a fresh identity secret.
func NewAccess() (Token, error) { return newToken(AccessPrefix) }

// ParseAccess checks the shape of an identity secret and returns its hash.
func ParseAccess(secret string) (Token, error) { return parse(AccessPrefix, secret) }

// ParseJoin checks the shape of a join token and returns its hash and ID.
func ParseJoin(secret string) (Token, error) { return parse(JoinPrefix, secret) }

// ParseAdmin checks the shape of an admin token and returns its hash.
func ParseAdmin(secret string) (Token, error) { return parse(AdminPrefix, secret) }

func parse(prefix, secret string) (Token, error) {
	body, ok := strings.CutPrefix(secret, prefix)
	if !ok {
		return Token{}, fmt.Errorf("%w: expected prefix %q", ErrMalformed, prefix)
	}
	if len(body) != base64.RawURLEncoding.EncodedLen(secretBytes) {
		return Token{}, fmt.Errorf("%w: wrong length", ErrMalformed)
	}
	if _, err := base64.RawURLEncoding.Strict().DecodeString(body); err != nil {
		return Token{}, fmt.Errorf("%w: not base64url", ErrMalformed)
	}
	h := sha256.Sum256([]byte(secret))
	return Token{Secret: secret, Hash: h[:], ID: hex.EncodeToString(h[:6])}, nil
}

// Equal compares two hashes in constant time.
func Equal(a, b []byte) bool { return subtle.ConstantTimeCompare(a, b) == 1 }
