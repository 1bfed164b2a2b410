// Package notify delivers the built-in alerting's firing and resolved
// notifications to Alertmanager's API (POST /api/v2/alerts) and to plain
// JSON webhooks.
//
// Delivery is at least once and in order per receiver. Notify writes one
// outbox entry per (receiver, notification) to bbolt in one transaction
// before it returns (store/outbox.go); Run's worker per receiver posts the
// oldest entry, and deletes it only after a 2xx. What can go wrong, and
// what happens:
//
//   - The receiver is down, times out, or answers 408, 429 or 5xx: the
//     entry stays and is posted again after a backoff of 1 s doubling to
//     5 min, with jitter, so nothing behind it overtakes it (a resolved
//     never reaches a receiver before its firing).
//   - It answers another 4xx, or a redirect (not followed: it could carry
//     the token elsewhere): the receiver refuses this notification for good.
//     It is logged, counted (outcome "dropped") and deleted, so one bad
//     entry does not block the queue.
//   - The control plane dies between the receiver's 2xx and the deletion:
//     the entry is posted again after the restart. That is the one
//     duplicate at-least-once delivery allows; a webhook receiver drops it
//     by the Idempotency-Key header (the notification's id, the same at
//     every attempt), Alertmanager by its labels.
//   - A receiver stays down: each keeps at most Config.MaxQueue entries;
//     the oldest go first, with a log line and outcome "overflow".
//   - A receiver's URL is removed from the config or changed: its entries
//     would never be sent; Run deletes them at start, logged and counted.
//   - The data disk is full (store.ErrDiskFull): Notify cannot write the
//     outbox. It returns the error, logs it and keeps the notifications in
//     memory (bounded as above), writing them with the next call or within
//     a resend interval once there is room; only a restart during that time
//     loses them. A delivered entry whose deletion is refused is not posted
//     again by this process; its deletion is retried.
//
// Alertmanager forgets an alert whose endsAt has passed. Firing alerts are
// therefore posted to it again every Config.ResendInterval with endsAt four
// intervals ahead, as Prometheus does; that resend is state (the firing
// set from Firing), not events, so it is not in the outbox. With several
// Alertmanager URLs every one gets everything: that is how an
// Alertmanager cluster expects its clients to send.
//
// No payload carries a secret: the webhook token is read from its file at
// each post and goes only in the Authorization header; receiver URLs (which
// may hold a token in their path) are never logged nor stored: logs name a
// receiver by kind, number and host, the outbox by a digest.
package notify
