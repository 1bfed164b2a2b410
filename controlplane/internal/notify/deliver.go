package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/forlock/fleet/controlplane/internal/secretfile"
)

const (
	// batch is how many outbox entries a worker reads at once.
	batch = 64
	// maxResendAlerts bounds one resend POST to Alertmanager.
	maxResendAlerts = 500
	// maxResponse is how much of a receiver's answer is read.
	maxResponse = 64 << 10
)

// outcome of one post.
type outcome int

const (
	delivered outcome = iota
	retry             // down, timeout, 408, 429, 5xx
	refused           // other 4xx, 3xx: this notification will never be taken
)

// deliver is one receiver's worker: the outbox in order, then (for
// Alertmanager) the firing set when a resend is due, until ctx ends.
func (n *Notifier) deliver(ctx context.Context, r *receiver) {
	failures := 0
	nextResend := time.Now()
	for ctx.Err() == nil {
		items, err := n.st.Outbox(r.key, r.delivered, batch)
		if err != nil {
			n.log.Error("read notification outbox", "receiver", r.name, "error", err)
		}
		stalled := err != nil
		for _, it := range items {
			rec, err := decodeRecord(it.Data)
			o := refused
			if err == nil {
				o, err = n.post(ctx, r, rec)
			}
			if ctx.Err() != nil {
				return
			}
			if o == retry {
				failures++
				n.count(r.kind, "failed", 1)
				n.log.Warn("alert notification not delivered; retrying", "receiver", r.name, "id", rec.ID, "attempt", failures, "error", err)
				stalled = true
				break
			}
			if o == refused {
				n.count(r.kind, "dropped", 1)
				n.log.Error("alert notification refused for good; dropped", "receiver", r.name, "id", rec.ID, "alert", rec.Alert.Name, "error", err)
			} else {
				n.count(r.kind, "sent", 1)
			}
			failures = 0
			r.delivered = it.Seq
			r.queued.Add(-1)
			n.gauges()
			if err := n.st.AckOutbox(r.key, r.delivered); err != nil {
				// Not posted again by this process (r.delivered); the
				// next acknowledgement deletes it too.
				n.log.Warn("delivered alert notification not deleted from the outbox; retried with the next one", "receiver", r.name, "error", err)
			}
		}
		var wait time.Duration
		switch {
		case stalled:
			wait = backoff(failures, n.cfg.minBackoff, n.cfg.maxBackoff)
		case len(items) == batch:
			continue
		case r.kind == kindAlertmanager && !time.Now().Before(nextResend):
			n.resend(ctx, r)
			nextResend = time.Now().Add(n.cfg.ResendInterval)
			wait = n.cfg.ResendInterval
		case r.kind == kindAlertmanager:
			wait = time.Until(nextResend)
		default:
			wait = time.Hour // until Notify wakes it
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
		case <-t.C:
		case <-r.wake:
			if stalled {
				// A new notification does not cut a backoff short: the
				// receiver is still down.
				select {
				case <-ctx.Done():
				case <-t.C:
				}
			}
		}
		t.Stop()
	}
}

// backoff is minB doubling per failure up to maxB, with the upper half
// random so receivers coming back are not hit by every sender at once.
func backoff(failures int, minB, maxB time.Duration) time.Duration {
	d := maxB
	if failures < 30 {
		d = min(minB<<max(failures-1, 0), maxB)
	}
	return d/2 + rand.N(d/2+1) //nolint:gosec // jitter, not a secret
}

// resend posts the firing set to an Alertmanager with endsAt four resend
// intervals ahead, so it stays active while the control plane lives.
func (n *Notifier) resend(ctx context.Context, r *receiver) {
	alerts := n.firingSet()
	slices.SortFunc(alerts, func(a, b Alert) int { return strings.Compare(a.Fingerprint, b.Fingerprint) })
	endsAt := time.Now().Add(4 * n.cfg.ResendInterval)
	for chunk := range slices.Chunk(alerts, maxResendAlerts) {
		body := make([]amAlert, len(chunk))
		for i, a := range chunk {
			body[i] = toAM(a, endsAt)
		}
		if _, err := n.postJSON(ctx, r, body, nil); err != nil {
			n.count(r.kind, "failed", 1)
			n.log.Warn("firing alerts not posted again; next try in a resend interval", "receiver", r.name, "alerts", len(chunk), "error", err)
			return
		}
		n.count(r.kind, "resent", len(chunk))
	}
}

// post sends one notification in the receiver's format.
func (n *Notifier) post(ctx context.Context, r *receiver, rec record) (outcome, error) {
	if r.kind == kindAlertmanager {
		endsAt := time.Now().Add(4 * n.cfg.ResendInterval)
		if rec.Resolved {
			endsAt = rec.At
		}
		return n.postJSON(ctx, r, []amAlert{toAM(rec.Alert, endsAt)}, nil)
	}
	h := http.Header{"Idempotency-Key": {rec.ID}}
	if n.cfg.WebhookTokenFile != "" {
		tok, err := secretfile.Read(n.cfg.WebhookTokenFile, "webhook token")
		if err != nil {
			return retry, err // an operator can mend the file; keep the entry
		}
		h.Set("Authorization", "Bearer "+tok)
	}
	msg := webhookMessage{Version: "1", ID: rec.ID, Status: status(rec.Resolved), Alert: rec.Alert, At: rec.At.UTC()}
	return n.postJSON(ctx, r, msg, h)
}

// postJSON posts v and classifies the answer. Errors never hold the URL.
func (n *Notifier) postJSON(ctx context.Context, r *receiver, v any, h http.Header) (outcome, error) {
	body, err := json.Marshal(v)
	if err != nil {
		return refused, err
	}
	ctx, cancel := context.WithTimeout(ctx, n.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.url, bytes.NewReader(body))
	if err != nil {
		return refused, errors.New("bad receiver URL")
	}
	for k, vs := range h {
		req.Header[k] = vs
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "forlock-controlplane")
	resp, err := n.client.Do(req)
	if err != nil {
		if ue := (*url.Error)(nil); errors.As(err, &ue) {
			err = ue.Err // url.Error prints the URL
		}
		return retry, err
	}
	defer func() { _ = resp.Body.Close() }()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	switch c := resp.StatusCode; {
	case c >= 200 && c < 300:
		return delivered, nil
	case c == http.StatusRequestTimeout || c == http.StatusTooManyRequests || c >= 500:
		return retry, fmt.Errorf("answered %s%s", resp.Status, excerpt(answer))
	case c >= 300 && c < 400:
		return refused, fmt.Errorf("answered %s, a redirect, which is not followed: set the final URL", resp.Status)
	default:
		return refused, fmt.Errorf("answered %s%s", resp.Status, excerpt(answer))
	}
}

// excerpt is the start of a receiver's answer, printable, for a log line.
func excerpt(b []byte) string {
	s := strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(string(b), "?"))
	if s = strings.TrimSpace(s); s == "" {
		return ""
	}
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return ": " + s
}
