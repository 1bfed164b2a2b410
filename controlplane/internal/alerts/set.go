package alerts

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
)

// load restores the firing set the store holds. Callers hold no lock (New).
func (e *Evaluator) load(stored map[string][]byte) error {
	for fp, v := range stored {
		var a Alert
		if err := json.Unmarshal(v, &a); err != nil {
			return fmt.Errorf("firing alert %s in the store: %w", fp, err)
		}
		e.firing[fp] = &a
	}
	if len(e.firing) > 0 {
		e.cfg.Log.Info("alerts: firing set loaded", "firing", len(e.firing))
	}
	return nil
}

// deliver writes the changed alerts to the store, then gives the
// transitions to the sink. A transition is handed on only once its alert
// is stored, so a restart never sends one again; what the store or the
// sink refuses (a full disk) is kept and tried again at the next
// evaluation.
func (e *Evaluator) deliver(ctx context.Context, ts []Transition) {
	e.mu.Lock()
	put, del := map[string][]byte{}, []string(nil)
	for fp, a := range e.unsaved {
		if a == nil {
			del = append(del, fp)
			continue
		}
		v, err := json.Marshal(a)
		if err != nil {
			e.mu.Unlock()
			e.cfg.Log.Error("alerts: encoding an alert failed", "alert", a.Name, "err", err)
			return
		}
		put[fp] = v
	}
	e.unsent = append(e.unsent, ts...)
	if over := len(e.unsent) - maxUnsent; over > 0 {
		e.cfg.Log.Warn("alerts: notifications the sink did not take are dropped, oldest first", "dropped", over)
		e.unsent = slices.Clone(e.unsent[over:])
	}
	e.mu.Unlock()

	if len(put) > 0 || len(del) > 0 {
		if err := e.cfg.Store.SaveAlerts(put, del); err != nil {
			e.cfg.Log.Warn("alerts: saving the firing set failed; notifications wait for the next evaluation", "err", err)
			return
		}
		e.mu.Lock()
		for fp, a := range e.unsaved {
			if _, ok := put[fp]; ok || a == nil && slices.Contains(del, fp) {
				delete(e.unsaved, fp)
			}
		}
		e.mu.Unlock()
	}
	e.mu.Lock()
	send := e.unsent
	e.unsent = nil
	e.mu.Unlock()
	if len(send) == 0 {
		return
	}
	for _, t := range send {
		level := "firing"
		if t.Resolved {
			level = "resolved"
		}
		e.cfg.Log.Info("alert "+level, "alert", t.Alert.Name, "severity", t.Alert.Severity, "node", t.Alert.Node,
			"labels", t.Alert.Labels, "summary", t.Alert.Summary, "since", t.Alert.Since)
	}
	if e.cfg.Sink == nil {
		return
	}
	if err := e.cfg.Sink.Notify(ctx, send); err != nil {
		e.cfg.Log.Warn("alerts: the notification outbox refused transitions; tried again at the next evaluation", "transitions", len(send), "err", err)
		e.mu.Lock()
		e.unsent = append(send, e.unsent...)
		e.mu.Unlock()
	}
}

// list returns the firing alerts, oldest first, of the named nodes (all
// when nodes is empty). Callers hold e.mu.
func (e *Evaluator) list(nodes []string) []Alert {
	out := make([]Alert, 0, len(e.firing))
	for _, a := range e.firing {
		if len(nodes) > 0 && !slices.Contains(nodes, a.Node) {
			continue
		}
		c := *a
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b Alert) int {
		return cmp.Or(a.Since.Compare(b.Since), cmp.Compare(a.Name, b.Name), cmp.Compare(a.Node, b.Node), cmp.Compare(a.Fingerprint, b.Fingerprint))
	})
	return out
}

// Firing returns the firing alerts, oldest first, of the named nodes (all
// when nodes is empty).
func (e *Evaluator) Firing(nodes []string) []Alert {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.list(nodes)
}

// Counts returns how many alerts fire, by name and severity (the metric
// forlock_alerts_firing).
func (e *Evaluator) Counts() map[[2]string]int {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := map[[2]string]int{}
	for _, a := range e.firing {
		out[[2]string{a.Name, a.Severity}]++
	}
	return out
}
