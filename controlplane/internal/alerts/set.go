package alerts

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/forlock/fleet/controlplane/internal/store"
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

// queued is a stored transition, by its ID in the store.
type queued struct {
	id uint64
	t  Transition
}

// loadUnsent restores the transitions the sink had not taken before a
// restart: they are handed on at the first evaluation.
func (e *Evaluator) loadUnsent(stored []store.AlertTransition) error {
	for _, st := range stored {
		var t Transition
		if err := json.Unmarshal(st.Data, &t); err != nil {
			return fmt.Errorf("alert notification %d in the store: %w", st.ID, err)
		}
		e.unsent = append(e.unsent, queued{id: st.ID, t: t})
	}
	return nil
}

// deliver writes the changed alerts and the new transitions to the store in
// one transaction, then hands the stored transitions to the sink and
// deletes them once it took them. So a transition is handed on only once
// its alert is stored (a restart never fires it again), and one the sink
// did not take survives a restart. What the store or the sink refuses (a
// full disk) is kept and tried again at the next evaluation; after a
// refused delete the sink may get a transition twice, never none.
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
	e.mu.Unlock()

	fresh := append(e.unstored, ts...)
	if over := len(fresh) - maxUnsent; over > 0 {
		e.cfg.Log.Warn("alerts: notifications that could not be stored are dropped, oldest first", "dropped", over)
		fresh = slices.Clone(fresh[over:])
	}
	var records [][]byte
	if e.cfg.Sink != nil {
		for _, t := range fresh {
			v, err := json.Marshal(t)
			if err != nil {
				e.cfg.Log.Error("alerts: encoding a transition failed", "alert", t.Alert.Name, "err", err)
				return
			}
			records = append(records, v)
		}
	}
	if len(put) > 0 || len(del) > 0 || len(records) > 0 {
		ids, err := e.cfg.Store.SaveAlerts(put, del, records)
		if err != nil {
			e.unstored = fresh
			e.cfg.Log.Warn("alerts: saving the firing set failed; notifications wait for the next evaluation", "err", err)
			return
		}
		e.mu.Lock()
		for fp := range put {
			delete(e.unsaved, fp)
		}
		for _, fp := range del {
			delete(e.unsaved, fp)
		}
		e.mu.Unlock()
		for i, id := range ids {
			e.unsent = append(e.unsent, queued{id: id, t: fresh[i]})
		}
	}
	e.unstored = nil
	for _, t := range fresh {
		level := "firing"
		if t.Resolved {
			level = "resolved"
		}
		e.cfg.Log.Info("alert "+level, "alert", t.Alert.Name, "severity", t.Alert.Severity, "node", t.Alert.Node,
			"labels", t.Alert.Labels, "summary", t.Alert.Summary, "since", t.Alert.Since)
	}
	e.hand(ctx)
}

// hand gives the stored transitions to the sink and deletes them once
// it took them.
func (e *Evaluator) hand(ctx context.Context) {
	if e.cfg.Sink == nil { // stored by a run with a sink: nobody to hand them to
		for _, q := range e.unsent {
			e.taken = append(e.taken, q.id)
		}
		e.unsent = nil
	}
	if len(e.unsent) > 0 {
		send := make([]Transition, len(e.unsent))
		for i, q := range e.unsent {
			send[i] = q.t
		}
		if err := e.cfg.Sink.Notify(ctx, send); err != nil {
			e.cfg.Log.Warn("alerts: the notification outbox refused transitions; tried again at the next evaluation", "transitions", len(send), "err", err)
			return
		}
		for _, q := range e.unsent {
			e.taken = append(e.taken, q.id)
		}
		e.unsent = nil
	}
	if len(e.taken) > 0 {
		if err := e.cfg.Store.DeleteAlertTransitions(e.taken); err != nil {
			e.cfg.Log.Warn("alerts: deleting handed-on notifications failed; tried again at the next evaluation", "err", err)
			return
		}
		e.taken = nil
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
