package agent

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/forlock/fleet/agent/internal/backoff"
	"github.com/forlock/fleet/agent/internal/identity"
	"github.com/forlock/fleet/internal/pki"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// renewAt is when to renew leaf: at two thirds of its lifetime, moved
// earlier by a random part of up to 1/30 of the lifetime so that nodes
// enrolled together do not renew together. randN(n) returns a value in
// [0, n).
func renewAt(leaf *x509.Certificate, randN func(int64) int64) time.Time {
	life := leaf.NotAfter.Sub(leaf.NotBefore)
	if life <= 0 {
		return leaf.NotBefore
	}
	at := leaf.NotBefore.Add(life / 3 * 2)
	if j := int64(life / 30); j > 0 {
		at = at.Add(-time.Duration(randN(j)))
	}
	return at
}

// errRenewed ends a session after a renewal: every connection must move to
// the new certificate before the control plane's grace for the old one ends.
var errRenewed = errors.New("certificate renewed: reconnecting with it")

// renewLoop renews the client certificate over client when it is due and
// returns errRenewed; it returns nil when ctx ends and the control plane's
// refusal if it refuses.
func (a *Agent) renewLoop(ctx context.Context, client forlockv1.AgentServiceClient, store *identity.Store) error {
	bo := backoff.New(a.cfg.MinBackoff, a.cfg.MaxBackoff)
	for {
		due := renewAt(a.identity().Leaf(), rand.Int64N)
		if backoff.Wait(ctx, time.Until(due)) != nil {
			return nil
		}
		err := a.renew(ctx, client, store)
		switch {
		case err == nil:
			return errRenewed
		case ctx.Err() != nil:
			return nil
		case isRefused(err):
			return fmt.Errorf("certificate renewal refused: %w", err)
		}
		delay := bo.Next()
		a.log.Warn("certificate renewal failed", "error", err.Error(), "retry_in", delay.Round(time.Millisecond).String())
		if backoff.Wait(ctx, delay) != nil {
			return nil
		}
	}
}

// renew asks for a certificate for the node's current key, checks and
// stores it, and makes it current for new connections.
func (a *Agent) renew(ctx context.Context, client forlockv1.AgentServiceClient, store *identity.Store) error {
	id := a.identity()
	csr, err := pki.CreateCSR(id.Key, id.Name)
	if err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, rpcTimeout)
	defer cancel()
	resp, err := client.RenewCertificate(cctx, &forlockv1.RenewCertificateRequest{Csr: csr})
	if err != nil {
		return fmt.Errorf("renew certificate: %w", err)
	}
	caPEM := resp.GetCaBundle()
	if len(caPEM) == 0 {
		caPEM = id.CAPEM
	}
	next, err := identity.Build(id.NodeID, id.Name, id.Key, resp.GetCertificateChain(), caPEM, time.Now())
	if err != nil {
		return fmt.Errorf("renew certificate: the control plane's answer is unusable: %w", err)
	}
	if err := store.SaveCertificate(next.ChainPEM, next.CAPEM); err != nil {
		return err
	}
	a.setIdentity(next)
	a.log.Info("certificate renewed", "node_id", next.NodeID, "cert_serial", next.Serial(),
		"cert_not_after", next.Leaf().NotAfter)
	return nil
}
