package api

import (
	"context"
	"log/slog"
	"slices"

	"google.golang.org/protobuf/proto"

	"github.com/forlock/fleet/controlplane/internal/registry"
	"github.com/forlock/fleet/internal/labels"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// CertAPI implements forlockv1.CertService: the inventory of the
// certificates the nodes' nginx serve.
type CertAPI struct {
	forlockv1.UnsafeCertServiceServer

	Store    CertStore
	Registry *registry.Registry
	Log      *slog.Logger
}

// ListCertificates implements CertService.ListCertificates.
func (a *CertAPI) ListCertificates(ctx context.Context, req *forlockv1.ListCertificatesRequest) (*forlockv1.ListCertificatesResponse, error) {
	sel, err := labels.ParseSelector(req.GetLabelSelector())
	if err != nil {
		return nil, invalid("%v", err)
	}
	resp := &forlockv1.ListCertificatesResponse{}
	for _, n := range a.Registry.List(sel, nil) {
		if !seesLabels(ctx, n.GetLabels()) {
			continue
		}
		c, err := nodeCertificate(a.Store, n)
		if err != nil {
			return nil, toStatus(ctx, a.Log, err)
		}
		if c == nil {
			continue
		}
		resp.Certificates = append(resp.Certificates, &forlockv1.NodeCertificate{NodeId: n.GetId(), NodeName: n.GetName(), Certificate: c})
	}
	slices.SortStableFunc(resp.Certificates, func(x, y *forlockv1.NodeCertificate) int {
		return x.GetCertificate().GetNotAfter().AsTime().Compare(y.GetCertificate().GetNotAfter().AsTime())
	})
	return resp, nil
}

// nodeCertificate is what a node's nginx serves, from its last health
// report, with where it came from if the control plane installed it; or the
// installed one when no report carried a certificate yet.
func nodeCertificate(st CertStore, n *forlockv1.Node) (*forlockv1.CertificateInfo, error) {
	installed, err := st.InstalledCertificate(n.GetId())
	if err != nil {
		return nil, err
	}
	served := n.GetHealth().GetCertificate()
	switch {
	case served == nil:
		return installed, nil
	case installed == nil:
		return served, nil
	}
	out := proto.CloneOf(served)
	out.RotatedAt = installed.GetRotatedAt()
	if served.GetSerial() == installed.GetSerial() {
		out.Source = installed.GetSource()
	}
	return out, nil
}

// withFacts adds what tasks reported about a node: its releases and its
// certificate.
func withFacts(st NodeStore, n *forlockv1.Node) (*forlockv1.Node, error) {
	rels, err := st.Releases(n.GetId())
	if err != nil {
		return nil, err
	}
	if len(rels) > 0 {
		n.Release, n.ReleaseHistory = rels[0], rels[1:]
	}
	if n.Certificate, err = nodeCertificate(st, n); err != nil {
		return nil, err
	}
	return n, nil
}
