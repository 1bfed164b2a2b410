package controlplane

import (
	"context"

	"github.com/forlock/fleet/controlplane/internal/alerts"
	"github.com/forlock/fleet/controlplane/internal/notify"
)

// notifySink hands the built-in alerting's transitions and firing set to
// the notifier, which stores them in its outbox and delivers them.
type notifySink struct{ n *notify.Notifier }

func (s notifySink) Notify(ctx context.Context, ts []alerts.Transition) error {
	out := make([]notify.Transition, len(ts))
	for i, t := range ts {
		out[i] = notify.Transition{Alert: toNotify(t.Alert), Resolved: t.Resolved, At: t.At}
	}
	return s.n.Notify(ctx, out)
}

func (s notifySink) Firing(as []alerts.Alert) {
	out := make([]notify.Alert, len(as))
	for i, a := range as {
		out[i] = toNotify(a)
	}
	s.n.Firing(out)
}

func toNotify(a alerts.Alert) notify.Alert {
	return notify.Alert{Name: a.Name, Severity: a.Severity, Node: a.Node, Summary: a.Summary, RunbookURL: a.RunbookURL,
		Fingerprint: a.Fingerprint, Labels: a.Labels, Since: a.Since}
}

// newNotifier makes the notifier of the alerting.* receivers and the sink
// the evaluator hands to; nil, nil when no receiver is set or a sink was
// given (tests).
func (s *Server) newNotifier() (*notify.Notifier, alerts.Sink, error) {
	if s.cfg.AlertSink != nil || !s.cfg.Notify.Enabled() {
		return nil, s.cfg.AlertSink, nil
	}
	cfg := s.cfg.Notify
	if s.metrics != nil {
		cfg.Metrics = s.metrics
	}
	n, err := notify.New(cfg, s.store, s.log)
	if err != nil {
		return nil, nil, err
	}
	return n, notifySink{n}, nil
}
