package notify

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sync/errgroup"

	"github.com/forlock/fleet/controlplane/internal/store"
)

// Store is the outbox, *store.Store.
type Store interface {
	AppendOutbox(entries []store.OutboxEntry, keep int) (map[string]int, error)
	Outbox(receiver string, after uint64, limit int) ([]store.OutboxItem, error)
	OutboxLen(receiver string) (int, error)
	AckOutbox(receiver string, seq uint64) error
	OutboxReceivers() (map[string]int, error)
	DropOutbox(receiver string) error
}

// Receiver kinds, the receiver_kind label of the metrics.
const (
	kindAlertmanager = "alertmanager"
	kindWebhook      = "webhook"
)

// receiver is one URL notifications go to.
type receiver struct {
	kind string
	url  string // where to POST
	key  string // outbox bucket: a digest, the URL may hold a secret
	name string // for logs: kind, number and host, never the URL
	wake chan struct{}
	// queued counts the outbox entries not yet delivered, for the gauge.
	queued atomic.Int64
	// delivered is the newest sequence the receiver took; entries up to
	// it are not posted again even if their deletion was refused.
	delivered uint64
}

// Notifier delivers notifications; see the package comment.
type Notifier struct {
	cfg       Config
	st        Store
	log       *slog.Logger
	client    *http.Client
	receivers []*receiver

	mu     sync.Mutex
	firing map[string]Alert // by fingerprint, for Alertmanager's resend
}

// New checks cfg and makes a Notifier; Run delivers.
func New(cfg Config, st Store, log *slog.Logger) (*Notifier, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	client, err := cfg.httpClient()
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	n := &Notifier{cfg: cfg, st: st, log: log, client: client, firing: map[string]Alert{}}
	for i, u := range cfg.AlertmanagerURLs {
		n.receivers = append(n.receivers, newReceiver(kindAlertmanager, i, strings.TrimRight(u, "/")+"/api/v2/alerts"))
	}
	for i, u := range cfg.WebhookURLs {
		n.receivers = append(n.receivers, newReceiver(kindWebhook, i, u))
	}
	return n, nil
}

func newReceiver(kind string, i int, target string) *receiver {
	sum := sha256.Sum256([]byte(kind + " " + target))
	host := ""
	if u, err := url.Parse(target); err == nil {
		host = u.Host
	}
	return &receiver{kind: kind, url: target, key: kind + "-" + hex.EncodeToString(sum[:16]),
		name: fmt.Sprintf("%s %d (%s)", kind, i+1, host), wake: make(chan struct{}, 1)}
}

// Notify stores one notification per transition for every receiver
// before it returns, and wakes the deliveries. On an error (a full data
// disk) nothing is stored: the caller keeps the transitions and passes
// them again (the alerting evaluator keeps them in its own bucket).
func (n *Notifier) Notify(_ context.Context, ts []Transition) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	var entries []store.OutboxEntry
	for _, t := range ts {
		// The resend set follows the transitions at once, so a resend
		// never posts an alert its resolved notification has ended.
		if t.Resolved {
			delete(n.firing, t.Alert.Fingerprint)
		} else {
			n.firing[t.Alert.Fingerprint] = t.Alert
		}
		data, err := json.Marshal(record{ID: newID(), Resolved: t.Resolved, At: t.At.UTC(), Alert: t.Alert})
		if err != nil {
			return fmt.Errorf("encode notification of %s: %w", t.Alert.Name, err)
		}
		for _, r := range n.receivers {
			entries = append(entries, store.OutboxEntry{Receiver: r.key, Data: data})
		}
	}
	return n.storeLocked(entries)
}

// storeLocked writes entries to the outbox (n.mu held).
func (n *Notifier) storeLocked(entries []store.OutboxEntry) error {
	if len(entries) == 0 {
		return nil
	}
	dropped, err := n.st.AppendOutbox(entries, n.cfg.MaxQueue)
	if err != nil {
		n.log.Error("alert notifications not stored: free space on the data disk; they are passed again at the next evaluation",
			"notifications", len(entries), "error", err)
		return fmt.Errorf("notifications not stored: %w", err)
	}
	for _, r := range n.receivers {
		added := 0
		for _, e := range entries {
			if e.Receiver == r.key {
				added++
			}
		}
		if d := dropped[r.key]; d > 0 {
			n.log.Warn("alert notifications dropped: the receiver's queue is full; the oldest went first", "receiver", r.name, "dropped", d, "cap", n.cfg.MaxQueue)
			n.count(r.kind, "overflow", d)
			added -= d
		}
		r.queued.Add(int64(added))
		select {
		case r.wake <- struct{}{}:
		default:
		}
	}
	n.gauges()
	return nil
}

// Firing replaces the set of firing alerts Alertmanager gets again every
// resend interval.
func (n *Notifier) Firing(alerts []Alert) {
	m := make(map[string]Alert, len(alerts))
	for _, a := range alerts {
		m[a.Fingerprint] = a
	}
	n.mu.Lock()
	n.firing = m
	n.mu.Unlock()
}

// firingSet copies the firing set.
func (n *Notifier) firingSet() []Alert {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]Alert, 0, len(n.firing))
	for _, a := range n.firing {
		out = append(out, a)
	}
	return out
}

// Run delivers until ctx ends: what the outbox holds from before (a
// restart), then what Notify adds.
func (n *Notifier) Run(ctx context.Context) error {
	if err := n.dropUnconfigured(); err != nil {
		return err
	}
	for _, r := range n.receivers {
		c, err := n.st.OutboxLen(r.key)
		if err != nil {
			return fmt.Errorf("read notification outbox: %w", err)
		}
		r.queued.Store(int64(c))
		if c > 0 {
			n.log.Info("alert notifications waiting from before", "receiver", r.name, "waiting", c)
		}
	}
	n.gauges()
	g, ctx := errgroup.WithContext(ctx)
	for _, r := range n.receivers {
		g.Go(func() error { n.deliver(ctx, r); return nil })
	}
	if err := g.Wait(); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// dropUnconfigured deletes the outbox of receivers no longer configured
// (a URL removed or changed): nothing would ever send it.
func (n *Notifier) dropUnconfigured() error {
	stored, err := n.st.OutboxReceivers()
	if err != nil {
		return fmt.Errorf("read notification outbox: %w", err)
	}
	for _, r := range n.receivers {
		delete(stored, r.key)
	}
	for key, c := range stored {
		kind, _, _ := strings.Cut(key, "-")
		if err := n.st.DropOutbox(key); err != nil {
			n.log.Warn("outbox of a receiver no longer configured not deleted", "kind", kind, "error", err)
			continue
		}
		if c > 0 {
			n.log.Warn("alert notifications dropped: their receiver is no longer configured (its URL was removed or changed)", "kind", kind, "dropped", c)
			n.count(kind, "dropped", c)
		}
	}
	return nil
}

func (n *Notifier) count(kind, outcome string, c int) {
	if n.cfg.Metrics == nil {
		return
	}
	n.cfg.Metrics.Notifications(kind, outcome, c)
}

func (n *Notifier) gauges() {
	if n.cfg.Metrics == nil {
		return
	}
	sum := map[string]int{kindAlertmanager: 0, kindWebhook: 0}
	for _, r := range n.receivers {
		// A delivery racing the cap may count one entry twice: never
		// below zero.
		sum[r.kind] += max(0, int(r.queued.Load()))
	}
	for k, v := range sum {
		n.cfg.Metrics.NotificationQueue(k, v)
	}
}
