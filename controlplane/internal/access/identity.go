package access

import (
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/forlock/fleet/internal/labels"
)

// BootstrapName is the identity of the admin token in forlockctl.yaml: it
// has the admin role and the whole fleet, and cannot be revoked through the
// API (rotate it by restarting forlock-controlplane with
// --rotate-admin-token).
const BootstrapName = "admin"

// MaxTTL bounds an identity's lifetime.
const MaxTTL = 366 * 24 * time.Hour

// Errors an identity check returns; the API maps them to codes.
var (
	ErrRevoked = errors.New("credential revoked")
	ErrExpired = errors.New("credential expired")
	ErrUnknown = errors.New("credential not recognised")
	ErrDenied  = errors.New("permission denied")
)

var nameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9._@-]{0,61}[a-z0-9])?$`)

// ValidateName checks an identity name: 1 to 63 lower-case letters, digits
// and . _ @ -, starting and ending with a letter or digit; "admin" is the
// bootstrap credential's.
func ValidateName(name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("identity name %q: use 1 to 63 lower-case letters, digits, '.', '_', '@' and '-', starting and ending with a letter or digit", name)
	}
	if name == BootstrapName {
		return fmt.Errorf("identity name %q is the bootstrap admin credential's: choose another", name)
	}
	return nil
}

// Identity is a named credential for a person or a program. Only the hash
// of its secret is stored.
type Identity struct {
	Name string `json:"name"`
	Role Role   `json:"role"`
	// Scope is a label selector; "" is the whole fleet.
	Scope     string    `json:"scope,omitempty"`
	Hash      []byte    `json:"hash"`
	CreatedAt time.Time `json:"created_at"`
	CreatedBy string    `json:"created_by,omitempty"`
	// ExpiresAt is zero for a credential that does not expire.
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	RevokedAt time.Time `json:"revoked_at,omitzero"`
	RotatedAt time.Time `json:"rotated_at,omitzero"`
}

// Usable says whether the credential may be used at now.
func (i *Identity) Usable(now time.Time) error {
	switch {
	case !i.RevokedAt.IsZero():
		return fmt.Errorf("%w: identity %s was revoked at %s", ErrRevoked, i.Name, i.RevokedAt.UTC().Format(time.RFC3339))
	case !i.ExpiresAt.IsZero() && !now.Before(i.ExpiresAt):
		return fmt.Errorf("%w: identity %s expired at %s: ask an admin for forlockctl access rotate %s", ErrExpired, i.Name, i.ExpiresAt.UTC().Format(time.RFC3339), i.Name)
	}
	return nil
}

// Principal returns who the identity acts as.
func (i *Identity) Principal() (Principal, error) {
	sel, err := labels.ParseSelector(i.Scope)
	if err != nil {
		return Principal{}, fmt.Errorf("identity %s: scope: %w", i.Name, err)
	}
	return Principal{Name: i.Name, Role: i.Role, Scope: sel}, nil
}

// Principal is an authenticated operator identity, as the handlers see it.
type Principal struct {
	Name string
	Role Role
	// Scope bounds the nodes it sees and acts on; the zero Selector is the
	// whole fleet.
	Scope labels.Selector
}

// Bootstrap is the principal of the admin token.
func Bootstrap() Principal { return Principal{Name: BootstrapName, Role: Admin} }

// Can reports whether the principal holds the permission.
func (p Principal) Can(perm Permission) bool { return p.Role.Can(perm) }

// Scoped reports whether the principal is bounded to part of the fleet.
func (p Principal) Scoped() bool { return p.Scope.String() != "" }

// Sees reports whether a node with these labels is in the principal's
// scope.
func (p Principal) Sees(nodeLabels map[string]string) bool { return p.Scope.Matches(nodeLabels) }

// Need returns ErrDenied, wrapped with what is missing, unless the
// principal holds the permission.
func (p Principal) Need(perm Permission) error {
	if p.Can(perm) {
		return nil
	}
	return fmt.Errorf("%w: %s (role %s) lacks %s", ErrDenied, p.Name, p.Role, perm)
}
