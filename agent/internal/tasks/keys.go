package tasks

import (
	"context"

	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// keysKey is the context key of a task's data keys.
type keysKey struct{}

// WithKeys returns ctx carrying the data keys of a task's assignment, as
// the runner gives it to the handler (tests call it too).
func WithKeys(ctx context.Context, keys []*forlockv1.TaskKey) context.Context {
	if len(keys) == 0 {
		return ctx
	}
	return context.WithValue(ctx, keysKey{}, keys)
}

// KeysFrom returns the data keys the control plane sent with the task
// whose handler received ctx: for a backup one per artifact kind, for a
// restore one per artifact ID. They hold plain keys: a handler uses them
// in memory only, never logs, journals or writes them. The runner wipes
// the plain keys when the handler returns.
func KeysFrom(ctx context.Context) []*forlockv1.TaskKey {
	keys, _ := ctx.Value(keysKey{}).([]*forlockv1.TaskKey)
	return keys
}

// wipeKeys overwrites the plain keys in place once the task is over.
func wipeKeys(keys []*forlockv1.TaskKey) {
	for _, k := range keys {
		clear(k.GetPlainKey())
	}
}

// certKey is the context key of a cert_rotate task's certificate pair.
type certKey struct{}

// WithCertificate returns ctx carrying the certificate pair of a task's
// assignment.
func WithCertificate(ctx context.Context, pair *forlockv1.CertificatePair) context.Context {
	if pair == nil {
		return ctx
	}
	return context.WithValue(ctx, certKey{}, pair)
}

// CertificateFrom returns the certificate pair the control plane sent with
// a cert_rotate task, or nil. It holds a private key: a handler uses it in
// memory only, never logs, journals or writes it anywhere but nginx.
func CertificateFrom(ctx context.Context) *forlockv1.CertificatePair {
	pair, _ := ctx.Value(certKey{}).(*forlockv1.CertificatePair)
	return pair
}

// jobKey is the context key of a task's job ID.
type jobKey struct{}

// WithJobID returns ctx carrying the ID of the job a task belongs to.
func WithJobID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, jobKey{}, id)
}

// JobIDFrom returns the ID of the job of the task whose handler received
// ctx, or "".
func JobIDFrom(ctx context.Context) string {
	id, _ := ctx.Value(jobKey{}).(string)
	return id
}
