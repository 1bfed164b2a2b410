package notify

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"maps"
	"time"
)

// Alert is a firing alert as the evaluator sees it.
type Alert struct {
	Name        string            `json:"name"`
	Severity    string            `json:"severity"`
	Node        string            `json:"node,omitempty"`
	Summary     string            `json:"summary"`
	RunbookURL  string            `json:"runbook_url,omitempty"`
	Fingerprint string            `json:"fingerprint"`
	Labels      map[string]string `json:"labels,omitempty"`
	Since       time.Time         `json:"since"`
}

// Transition is an alert that started firing or resolved at At.
type Transition struct {
	Alert    Alert
	Resolved bool
	At       time.Time
}

// record is an outbox entry: one notification, the same for every
// receiver. Payloads are built from it at each post.
type record struct {
	ID       string    `json:"id"`
	Resolved bool      `json:"resolved,omitempty"`
	At       time.Time `json:"at"`
	Alert    Alert     `json:"alert"`
}

func newID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return hex.EncodeToString(b)
}

func decodeRecord(data []byte) (record, error) {
	var r record
	if err := json.Unmarshal(data, &r); err != nil {
		return record{}, err
	}
	if r.ID == "" || r.Alert.Name == "" {
		return record{}, errors.New("notification without id or alert name")
	}
	return r, nil
}

// webhookMessage is the JSON a webhook receives (docs/operations.md,
// "Alert notifications"): version "1" stays stable; a field may be added.
type webhookMessage struct {
	Version string    `json:"version"`
	ID      string    `json:"id"`
	Status  string    `json:"status"`
	Alert   Alert     `json:"alert"`
	At      time.Time `json:"at"`
}

func status(resolved bool) string {
	if resolved {
		return "resolved"
	}
	return "firing"
}

// amAlert is Alertmanager's postableAlert (api/v2/openapi.yaml).
type amAlert struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations,omitempty"`
	StartsAt    time.Time         `json:"startsAt,omitzero"`
	EndsAt      time.Time         `json:"endsAt,omitzero"`
}

// toAM maps an alert to Alertmanager's form. A firing alert ends at
// endsAt unless posted again; a resolved one ends at its resolve time.
// Label names Alertmanager would refuse are mended ('_' for every other
// character), and empty values left out, as Prometheus does: a refused
// label would get the whole notification dropped.
func toAM(a Alert, endsAt time.Time) amAlert {
	labels := make(map[string]string, len(a.Labels)+3)
	for k, v := range a.Labels {
		if k = labelName(k); k != "" && v != "" {
			labels[k] = v
		}
	}
	maps.Copy(labels, map[string]string{"alertname": a.Name, "severity": a.Severity, "node": a.Node})
	maps.DeleteFunc(labels, func(_, v string) bool { return v == "" })
	ann := map[string]string{}
	if a.Summary != "" {
		ann["summary"] = a.Summary
	}
	if a.RunbookURL != "" {
		ann["runbook_url"] = a.RunbookURL
	}
	return amAlert{Labels: labels, Annotations: ann, StartsAt: a.Since.UTC(), EndsAt: endsAt.UTC()}
}

// labelName mends a Prometheus label name: [a-zA-Z_][a-zA-Z0-9_]*.
func labelName(k string) string {
	if len(k) > 128 {
		k = k[:128]
	}
	b := []byte(k)
	for i, c := range b {
		if c != '_' && (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') && (i == 0 || c < '0' || c > '9') {
			b[i] = '_'
		}
	}
	return string(b)
}
