package scheduler

import (
	"context"
	"fmt"
	"time"

	"github.com/forlock/fleet/internal/labels"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// The certificate rotation policy of the operations guide.
const (
	// CertRotateEvery: a certificate the control plane installed is
	// replaced after this long.
	CertRotateEvery = 90 * 24 * time.Hour
	// CertRotateBefore: any certificate with less time left is replaced.
	CertRotateBefore = 30 * 24 * time.Hour
	// DefaultCertCheckInterval is how often the policy looks at the fleet.
	DefaultCertCheckInterval = time.Hour
)

// Nodes is what the certificate policy reads of the registry: the nodes
// matching a selector in the given states.
type Nodes interface {
	List(sel labels.Selector, states []forlockv1.NodeState) []*forlockv1.Node
}

// Certificates is what the certificate policy reads of the store: the
// certificate the control plane last installed on a node (nil if none).
type Certificates interface {
	InstalledCertificate(nodeID string) (*forlockv1.CertificateInfo, error)
}

// certDue says why a node's certificate is due for rotation, or "".
func certDue(now time.Time, served, installed *forlockv1.CertificateInfo) string {
	if na := served.GetNotAfter(); na != nil && na.AsTime().Sub(now) < CertRotateBefore {
		return fmt.Sprintf("expires in %s (< 30 days)", na.AsTime().Sub(now).Round(time.Hour))
	}
	if at := installed.GetRotatedAt(); at != nil && now.Sub(at.AsTime()) >= CertRotateEvery {
		return "installed 90 days ago"
	}
	return ""
}

// runCertPolicy submits a cert_rotate job for every connected node whose
// certificate is due, at most once a day per node (an idempotency key of
// node and day), until ctx ends.
func (s *Scheduler) runCertPolicy(ctx context.Context, every time.Duration) error {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		s.rotateDueCerts(ctx, time.Now())
	}
}

func (s *Scheduler) rotateDueCerts(ctx context.Context, now time.Time) {
	for _, n := range s.cfg.Nodes.List(labels.Selector{}, []forlockv1.NodeState{forlockv1.NodeState_NODE_STATE_ONLINE}) {
		installed, err := s.cfg.Certificates.InstalledCertificate(n.GetId())
		if err != nil {
			s.log.Warn("certificate policy: cannot read the installed certificate", "node", n.GetName(), "error", err.Error())
			continue
		}
		why := certDue(now, n.GetHealth().GetCertificate(), installed)
		if why == "" {
			continue
		}
		// A node whose certificate came from KV keeps getting it from KV
		// (another tool such as certbot renews it there).
		spec := &forlockv1.CertRotateSpec{}
		if installed.GetSource() == forlockv1.CertificateSource_CERTIFICATE_SOURCE_VAULT_KV {
			spec.Source = forlockv1.CertificateSource_CERTIFICATE_SOURCE_VAULT_KV
		}
		job, created, err := s.cfg.Jobs.Submit(ctx, &forlockv1.SubmitJobRequest{
			Spec:           &forlockv1.JobSpec{Kind: &forlockv1.JobSpec_CertRotate{CertRotate: spec}},
			Target:         &forlockv1.Target{Nodes: []string{n.GetId()}},
			Rollout:        &forlockv1.Rollout{OfflinePolicy: forlockv1.OfflinePolicy_OFFLINE_POLICY_SKIP},
			IdempotencyKey: fmt.Sprintf("cert-policy-%s-%s", n.GetId(), now.UTC().Format("20060102")),
		})
		switch {
		case err != nil:
			s.log.Warn("certificate policy: rotation not submitted", "node", n.GetName(), "reason", why, "error", err.Error())
		case created:
			s.log.Info("certificate policy: rotation submitted", "node", n.GetName(), "reason", why, "job_id", job.GetId())
		}
	}
}
