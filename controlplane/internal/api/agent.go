package api

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/forlock/fleet/controlplane/internal/auth"
	"github.com/forlock/fleet/controlplane/internal/jobs"
	"github.com/forlock/fleet/controlplane/internal/logs"
	"github.com/forlock/fleet/controlplane/internal/registry"
	"github.com/forlock/fleet/controlplane/internal/store"
	"github.com/forlock/fleet/controlplane/internal/tokens"
	"github.com/forlock/fleet/internal/buildinfo"
	"github.com/forlock/fleet/internal/pki"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// maxFactLen bounds each string of host facts sent by an agent.
const maxFactLen = 256

// AgentAPI implements forlockv1.AgentService.
type AgentAPI struct {
	forlockv1.UnsafeAgentServiceServer

	Store    *store.Store
	Registry *registry.Registry
	Jobs     *jobs.Engine
	Broker   *logs.Broker
	CA       *pki.CA
	CertTTL  time.Duration
	Log      *slog.Logger
	// Stream bounds the control messages of each agent stream.
	Stream StreamLimits
}

// Enroll implements AgentService.Enroll.
func (a *AgentAPI) Enroll(ctx context.Context, req *forlockv1.EnrollRequest) (*forlockv1.EnrollResponse, error) {
	tok, err := tokens.ParseJoin(req.GetJoinToken())
	if err != nil {
		return nil, invalid("join token is malformed: pass the fjt_... string printed by 'forlockctl tokens create'")
	}
	if err := pki.ValidateNodeName(req.GetName()); err != nil {
		return nil, invalid("%v", err)
	}
	csr, err := pki.ParseCSR(req.GetCsr())
	if err != nil {
		return nil, invalid("certificate signing request refused: %v", err)
	}
	if err := validateFacts(req.GetFacts()); err != nil {
		return nil, err
	}
	now := time.Now()
	var cert *x509.Certificate
	n, err := a.Store.Enroll(store.EnrollParams{
		TokenID: tok.ID, TokenHash: tok.Hash, Name: req.GetName(), Now: now, NewID: newNodeID,
	}, func(n store.Node) (store.Issued, error) {
		cert, err = a.CA.IssueNode(now, csr, pki.NodeID{ID: n.ID, Epoch: n.Epoch}, a.CertTTL)
		if err != nil {
			return store.Issued{}, err
		}
		return issued(cert), nil
	})
	if err != nil {
		a.Log.WarnContext(ctx, "enrollment refused", "token_id", tok.ID, "name", req.GetName(), "err", err)
		return nil, toStatus(ctx, a.Log, enrollError(tok.ID, err))
	}
	a.Registry.Enrolled(n)
	a.Log.InfoContext(ctx, "node enrolled", "node", n.Name, "node_id", n.ID, "token_id", tok.ID, "enrollments", n.Enrollments)
	return &forlockv1.EnrollResponse{
		NodeId:           n.ID,
		CertificateChain: pki.EncodeCertPEM(cert.Raw),
		CaBundle:         a.CA.CertPEM(),
		Labels:           n.Labels,
	}, nil
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

// RenewCertificate implements AgentService.RenewCertificate.
func (a *AgentAPI) RenewCertificate(ctx context.Context, req *forlockv1.RenewCertificateRequest) (*forlockv1.RenewCertificateResponse, error) {
	id, ok := auth.NodeFromContext(ctx)
	if !ok {
		return nil, errors.New("renew without node identity") // unreachable: auth sets it
	}
	csr, err := pki.ParseCSR(req.GetCsr())
	if err != nil {
		return nil, invalid("certificate signing request refused: %v", err)
	}
	cert, err := a.CA.IssueNode(time.Now(), csr, id, a.CertTTL)
	if err != nil {
		return nil, toStatus(ctx, a.Log, err)
	}
	n, err := a.Store.RecordCertificate(id.ID, id.Epoch, issued(cert))
	if err != nil {
		return nil, toStatus(ctx, a.Log, err)
	}
	a.Registry.CertificateRenewed(n)
	a.Log.InfoContext(ctx, "certificate renewed", "node", n.Name, "node_id", n.ID, "serial", n.CertSerial, "not_after", n.CertNotAfter)
	return &forlockv1.RenewCertificateResponse{CertificateChain: pki.EncodeCertPEM(cert.Raw), CaBundle: a.CA.CertPEM()}, nil
}

func issued(c *x509.Certificate) store.Issued {
	return store.Issued{Serial: pki.SerialHex(c), NotAfter: c.NotAfter}
}

func newNodeID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on supported platforms
	return hex.EncodeToString(b)
}

func validateFacts(f *forlockv1.HostFacts) error {
	// Runs on every heartbeat: no allocation.
	for _, fv := range [...]struct{ name, v string }{
		{"hostname", f.GetHostname()}, {"os", f.GetOs()}, {"kernel", f.GetKernel()},
		{"arch", f.GetArch()}, {"agent_version", f.GetAgentVersion()},
	} {
		if len(fv.v) > maxFactLen {
			return invalid("host facts: %s longer than %d bytes", fv.name, maxFactLen)
		}
	}
	return nil
}

func serverVersion() string { return buildinfo.Version() }
