package api

import (
	"context"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/forlock/fleet/controlplane/internal/alerts"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// maxAlertNodes bounds a ListAlerts filter.
const maxAlertNodes = 1000

// FiringAlerts is the built-in alerting's firing set.
type FiringAlerts interface {
	Firing(nodes []string) []alerts.Alert
}

// AlertAPI implements forlockv1.AlertService.
type AlertAPI struct {
	forlockv1.UnsafeAlertServiceServer

	Alerts   FiringAlerts
	Registry nodeMatcher
}

// ListAlerts implements AlertService.ListAlerts. A scoped identity sees the
// alerts of the nodes in its scope, not the control plane's own nor job
// alerts (a job may span nodes it does not see).
func (a *AlertAPI) ListAlerts(ctx context.Context, req *forlockv1.ListAlertsRequest) (*forlockv1.ListAlertsResponse, error) {
	if len(req.GetNodes()) > maxAlertNodes {
		return nil, invalid("at most %d nodes, got %d: leave nodes empty for every alert", maxAlertNodes, len(req.GetNodes()))
	}
	scoped := scopeOf(ctx).String() != ""
	out := &forlockv1.ListAlertsResponse{}
	for _, al := range a.Alerts.Firing(req.GetNodes()) {
		if scoped && (al.NodeID == "" || !sees(ctx, a.Registry, al.NodeID)) {
			continue
		}
		out.Alerts = append(out.Alerts, &forlockv1.Alert{Name: al.Name, Severity: al.Severity, Node: al.Node, Labels: al.Labels,
			Summary: al.Summary, Since: timestamppb.New(al.Since), RunbookUrl: al.RunbookURL, Fingerprint: al.Fingerprint})
	}
	return out, nil
}
