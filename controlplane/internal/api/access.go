package api

import (
	"context"
	"log/slog"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/forlock/fleet/controlplane/internal/access"
	"github.com/forlock/fleet/controlplane/internal/audit"
	"github.com/forlock/fleet/controlplane/internal/auth"
	"github.com/forlock/fleet/controlplane/internal/tokens"
	"github.com/forlock/fleet/internal/labels"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// IdentityStore is the part of the store AccessAPI needs.
type IdentityStore interface {
	CreateIdentity(id access.Identity, recs ...audit.Record) error
	Identities() ([]access.Identity, error)
	RevokeIdentity(name string, now time.Time, recs ...audit.Record) (access.Identity, error)
	RotateIdentity(name string, hash []byte, expires, now time.Time, recs ...audit.Record) (access.Identity, error)
}

// AccessAPI implements forlockv1.AccessService.
type AccessAPI struct {
	forlockv1.UnsafeAccessServiceServer

	Store IdentityStore
	Log   *slog.Logger
}

// newSecret makes an identity secret and says when it expires: ttl from
// now, or never (the zero time) for an unset or zero ttl.
func (a *AccessAPI) newSecret(ctx context.Context, ttl *durationpb.Duration) (tok tokens.Token, now, expires time.Time, err error) {
	if ttl != nil {
		if err := ttl.CheckValid(); err != nil {
			return tok, now, expires, invalid("ttl: %v", err)
		}
		if d := ttl.AsDuration(); d < 0 || d > access.MaxTTL {
			return tok, now, expires, invalid("ttl %s out of range: use 0 (no expiry) up to %s", d, access.MaxTTL)
		}
	}
	if tok, err = tokens.NewAccess(); err != nil {
		return tok, now, expires, toStatus(ctx, a.Log, err)
	}
	now = time.Now().UTC()
	if d := ttl.AsDuration(); d > 0 {
		expires = now.Add(d)
	}
	return tok, now, expires, nil
}

// CreateIdentity implements AccessService.CreateIdentity.
func (a *AccessAPI) CreateIdentity(ctx context.Context, req *forlockv1.CreateIdentityRequest) (*forlockv1.CreateIdentityResponse, error) {
	if err := unscoped(ctx, "managing identities"); err != nil {
		return nil, err
	}
	if err := access.ValidateName(req.GetName()); err != nil {
		return nil, invalid("%v", err)
	}
	role, err := access.ParseRole(req.GetRole())
	if err != nil {
		return nil, invalid("%v", err)
	}
	sel, err := labels.ParseSelector(req.GetScope())
	if err != nil {
		return nil, invalid("scope: %v", err)
	}
	tok, now, expires, err := a.newSecret(ctx, req.GetTtl())
	if err != nil {
		return nil, err
	}
	creator, _ := auth.PrincipalFromContext(ctx)
	id := access.Identity{Name: req.GetName(), Role: role, Scope: sel.String(), Hash: tok.Hash, CreatedAt: now, CreatedBy: creator.Name,
		ExpiresAt: expires}
	recs, done := change(ctx, "identity/"+id.Name)
	if err := a.Store.CreateIdentity(id, recs...); err != nil {
		return nil, toStatus(ctx, a.Log, err)
	}
	done()
	a.Log.InfoContext(ctx, "identity created", "identity", id.Name, "role", role, "scope", id.Scope, "by", creator.Name)
	return &forlockv1.CreateIdentityResponse{Identity: identityProto(id), Secret: tok.Secret}, nil
}

// ListIdentities implements AccessService.ListIdentities.
func (a *AccessAPI) ListIdentities(ctx context.Context, _ *forlockv1.ListIdentitiesRequest) (*forlockv1.ListIdentitiesResponse, error) {
	if err := unscoped(ctx, "managing identities"); err != nil {
		return nil, err
	}
	ids, err := a.Store.Identities()
	if err != nil {
		return nil, toStatus(ctx, a.Log, err)
	}
	out := []*forlockv1.Identity{{Name: access.BootstrapName, Role: string(access.Admin), Bootstrap: true}}
	for _, id := range ids {
		out = append(out, identityProto(id))
	}
	return &forlockv1.ListIdentitiesResponse{Identities: out}, nil
}

// RevokeIdentity implements AccessService.RevokeIdentity.
func (a *AccessAPI) RevokeIdentity(ctx context.Context, req *forlockv1.RevokeIdentityRequest) (*forlockv1.RevokeIdentityResponse, error) {
	if err := unscoped(ctx, "managing identities"); err != nil {
		return nil, err
	}
	if req.GetName() == access.BootstrapName {
		return nil, invalid("the bootstrap admin credential cannot be revoked here: replace it by restarting forlock-controlplane with --rotate-admin-token")
	}
	recs, done := change(ctx, "identity/"+req.GetName())
	id, err := a.Store.RevokeIdentity(req.GetName(), time.Now().UTC(), recs...)
	if err != nil {
		return nil, toStatus(ctx, a.Log, err)
	}
	done()
	a.Log.InfoContext(ctx, "identity revoked", "identity", id.Name)
	return &forlockv1.RevokeIdentityResponse{Identity: identityProto(id)}, nil
}

// RotateIdentity implements AccessService.RotateIdentity.
func (a *AccessAPI) RotateIdentity(ctx context.Context, req *forlockv1.RotateIdentityRequest) (*forlockv1.RotateIdentityResponse, error) {
	if err := unscoped(ctx, "managing identities"); err != nil {
		return nil, err
	}
	if req.GetName() == access.BootstrapName {
		return nil, invalid("the bootstrap admin credential is rotated by restarting forlock-controlplane with --rotate-admin-token")
	}
	tok, now, expires, err := a.newSecret(ctx, req.GetTtl())
	if err != nil {
		return nil, err
	}
	recs, done := change(ctx, "identity/"+req.GetName())
	id, err := a.Store.RotateIdentity(req.GetName(), tok.Hash, expires, now, recs...)
	if err != nil {
		return nil, toStatus(ctx, a.Log, err)
	}
	done()
	a.Log.InfoContext(ctx, "identity rotated", "identity", id.Name)
	return &forlockv1.RotateIdentityResponse{Identity: identityProto(id), Secret: tok.Secret}, nil
}

// WhoAmI implements AccessService.WhoAmI.
func (a *AccessAPI) WhoAmI(ctx context.Context, _ *forlockv1.WhoAmIRequest) (*forlockv1.WhoAmIResponse, error) {
	p, _ := auth.PrincipalFromContext(ctx)
	resp := &forlockv1.WhoAmIResponse{Name: p.Name, Role: string(p.Role), Scope: p.Scope.String()}
	for _, perm := range p.Role.Permissions() {
		resp.Permissions = append(resp.Permissions, string(perm))
	}
	return resp, nil
}

func identityProto(id access.Identity) *forlockv1.Identity {
	out := &forlockv1.Identity{Name: id.Name, Role: string(id.Role), Scope: id.Scope, CreatedAt: timestamppb.New(id.CreatedAt), CreatedBy: id.CreatedBy}
	if !id.ExpiresAt.IsZero() {
		out.ExpiresAt = timestamppb.New(id.ExpiresAt)
	}
	if !id.RevokedAt.IsZero() {
		out.RevokedAt = timestamppb.New(id.RevokedAt)
	}
	if !id.RotatedAt.IsZero() {
		out.RotatedAt = timestamppb.New(id.RotatedAt)
	}
	return out
}
