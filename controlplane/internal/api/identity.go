package api

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"

	"github.com/forlock/fleet/controlplane/internal/auth"
	"github.com/forlock/fleet/controlplane/internal/enroll"
	"github.com/forlock/fleet/controlplane/internal/store"
	"github.com/forlock/fleet/internal/pki"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// Enroll implements AgentService.Enroll. Who may join as what is decided by
// package enroll (inside the store's transaction); this handler validates,
// signs, and logs every outcome with the client's address and the token's ID
// (never its secret).
func (a *AgentAPI) Enroll(ctx context.Context, req *forlockv1.EnrollRequest) (*forlockv1.EnrollResponse, error) {
	tok, err := a.checkJoinToken(ctx, req.GetJoinToken())
	if err != nil {
		return nil, err
	}
	auditActor(ctx, "join-token/"+tok.ID, "node/"+req.GetName())
	csr, err := validateEnroll(req)
	if err != nil {
		a.enrollFailed("invalid_request")
		return nil, err
	}
	now := time.Now()
	keyID := enroll.CSRKeyID(csr)
	log := a.Log.With("client", clientAddr(ctx), "token_id", tok.ID, "name", req.GetName(), "key_id", shortKey(keyID))
	var cert *x509.Certificate
	res, err := a.Store.Enroll(ctx, store.EnrollParams{
		TokenID: tok.ID, TokenHash: tok.Hash, Name: req.GetName(), KeyID: keyID, Now: now, NewID: newNodeID,
	}, func(n store.Node) (store.Issued, error) {
		cert, err = a.CA.IssueNode(now, csr, pki.NodeID{ID: n.ID, Epoch: n.Epoch}, a.CertTTL)
		if err != nil {
			return store.Issued{}, err
		}
		if a.Hooks.BeforeCommit != nil {
			a.Hooks.BeforeCommit(ctx, n.Name)
		}
		return issued(cert), nil
	})
	if err != nil {
		level := slog.LevelWarn
		if errors.Is(err, enroll.ErrNameTaken) || errors.Is(err, enroll.ErrWrongNode) || errors.Is(err, enroll.ErrQuarantined) {
			level = slog.LevelError // someone tried to enroll as a node it is not
		}
		log.Log(ctx, level, "enrollment refused", "rule", enroll.Refusal(err), "err", err)
		a.enrollFailed(strings.ReplaceAll(strings.TrimPrefix(enroll.Refusal(err), "refused-"), "-", "_"))
		return nil, toStatus(ctx, a.Log, enrollError(tok.ID, err))
	}
	n := res.Node
	a.Registry.Enrolled(n)
	log = log.With("node", n.Name, "node_id", n.ID, "rule", res.Decision.Rule, "epoch", n.Epoch,
		"token_uses", res.Token.Uses, "token_max_uses", res.Token.MaxUses, "serial", n.CertSerial)
	switch {
	case res.Decision.NewKey:
		log.WarnContext(ctx, "node enrolled with a new key: its old identity and every certificate of it are retired",
			"retired_key_id", shortKey(res.RetiredKeyID), "quarantine_lifted", res.Decision.Unquarantine)
	case res.Decision.Rule == enroll.RuleNew:
		log.InfoContext(ctx, "node enrolled")
	default:
		log.InfoContext(ctx, "node enrolled again with its registered key: earlier certificates retired")
	}
	if a.Hooks.AfterCommit != nil {
		if err := a.Hooks.AfterCommit(ctx, n.ID); err != nil {
			return nil, err
		}
	}
	return &forlockv1.EnrollResponse{
		NodeId:           n.ID,
		CertificateChain: pki.EncodeCertPEM(cert.Raw),
		CaBundle:         a.CA.CertPEM(),
		Labels:           n.Labels,
	}, nil
}

// validateEnroll checks an enrollment's name, CSR and facts.
func validateEnroll(req *forlockv1.EnrollRequest) (*x509.CertificateRequest, error) {
	if err := pki.ValidateNodeName(req.GetName()); err != nil {
		return nil, invalid("%v", err)
	}
	csr, err := pki.ParseCSR(req.GetCsr())
	if err != nil {
		return nil, invalid("certificate signing request refused: %v", err)
	}
	return csr, validateFacts(req.GetFacts())
}

func enrollError(tokenID string, err error) error {
	switch {
	case errors.Is(err, store.ErrTokenUnknown):
		return fmt.Errorf("join token %s is not known to this control plane: create one with 'forlockctl tokens create': %w", tokenID, err)
	case errors.Is(err, store.ErrTokenExpired), errors.Is(err, store.ErrTokenUsedUp), errors.Is(err, store.ErrTokenRevoked):
		return fmt.Errorf("join token %s refused: %w; create a new one with 'forlockctl tokens create'", tokenID, err)
	}
	return err
}

// RenewCertificate implements AgentService.RenewCertificate. The auth layer
// has let only the node's newest certificate, or the previous one within its
// grace, through; the store checks it again in its transaction.
func (a *AgentAPI) RenewCertificate(ctx context.Context, req *forlockv1.RenewCertificateRequest) (*forlockv1.RenewCertificateResponse, error) {
	id, ok := auth.NodeFromContext(ctx)
	if !ok {
		return nil, errors.New("renew without node identity") // unreachable: auth sets it
	}
	csr, err := pki.ParseCSR(req.GetCsr())
	if err != nil {
		return nil, invalid("certificate signing request refused: %v", err)
	}
	now := time.Now()
	cert, err := a.CA.IssueNode(now, csr, id, a.CertTTL)
	if err != nil {
		return nil, toStatus(ctx, a.Log, err)
	}
	from := clientSerial(ctx)
	n, err := a.Store.RecordCertificate(store.Renewal{ID: id.ID, Epoch: id.Epoch, From: from, Issued: issued(cert), Now: now, Grace: a.CertGrace})
	if err != nil {
		return nil, toStatus(ctx, a.Log, err)
	}
	a.Registry.CertificateRenewed(n)
	a.Log.InfoContext(ctx, "certificate renewed", "node", n.Name, "node_id", n.ID, "client", clientAddr(ctx),
		"from_serial", from, "serial", n.CertSerial, "not_after", n.CertNotAfter, "previous_valid_until", n.PrevCertUntil)
	return &forlockv1.RenewCertificateResponse{CertificateChain: pki.EncodeCertPEM(cert.Raw), CaBundle: a.CA.CertPEM()}, nil
}

// NodeRefused is auth.Checker.NodeRefused: a superseded certificate is a
// possible theft, logged loudly; one that tries to renew quarantines its
// node, since only a copy of an old certificate would still be renewing.
func (a *AgentAPI) NodeRefused(ctx context.Context, method string, id pki.NodeID, serial string, err error) {
	log := a.Log.With("node_id", id.ID, "epoch", id.Epoch, "serial", serial, "client", clientAddr(ctx), "method", method)
	if !errors.Is(err, enroll.ErrSuperseded) {
		log.WarnContext(ctx, "agent certificate refused", "err", err)
		return
	}
	log.ErrorContext(ctx, "POSSIBLE STOLEN CERTIFICATE: a superseded certificate of this node was used after its grace", "err", err)
	if method != forlockv1.AgentService_RenewCertificate_FullMethodName {
		return
	}
	reason := fmt.Sprintf("superseded certificate %s tried to renew from %s", serial, clientAddr(ctx))
	n, qerr := a.Store.Quarantine(id.ID, reason, time.Now())
	if qerr != nil {
		log.ErrorContext(ctx, "quarantining the node failed", "err", qerr)
		return
	}
	a.Registry.Quarantine(n)
	log.ErrorContext(ctx, "NODE QUARANTINED: every certificate of it is refused until a host enrolls with a token from 'forlockctl tokens create --for-node "+n.Name+"'",
		"node", n.Name, "reason", n.QuarantineReason)
}

func issued(c *x509.Certificate) store.Issued {
	return store.Issued{Serial: pki.SerialHex(c), NotAfter: c.NotAfter, KeyID: enroll.KeyID(c.RawSubjectPublicKeyInfo)}
}

// clientAddr is the caller's network address, for the log.
func clientAddr(ctx context.Context) string {
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		return p.Addr.String()
	}
	return "unknown"
}

// clientSerial is the serial of the caller's verified client certificate.
func clientSerial(ctx context.Context) string {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return ""
	}
	ti, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(ti.State.VerifiedChains) == 0 || len(ti.State.VerifiedChains[0]) == 0 {
		return ""
	}
	return pki.SerialHex(ti.State.VerifiedChains[0][0])
}

func shortKey(k string) string { return k[:min(len(k), 16)] }
