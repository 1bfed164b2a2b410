package api

import (
	"context"
	"log/slog"
	"strings"
	"time"
	"unicode"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/forlock/fleet/controlplane/internal/access"
	"github.com/forlock/fleet/controlplane/internal/audit"
	"github.com/forlock/fleet/controlplane/internal/auth"
	"github.com/forlock/fleet/controlplane/internal/limit"
	"github.com/forlock/fleet/internal/protocol"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// ReasonHeader is the metadata key of a call's change reason (forlockctl
// --reason): free text such as a ticket ID, at most MaxReason bytes.
const ReasonHeader = "x-forlock-reason"

// MaxReason bounds a change reason.
const MaxReason = 256

// AuditStore is what the auditor writes to.
type AuditStore interface {
	// Audit appends records in a transaction of their own.
	Audit(recs ...audit.Record) error
	// CheckWritable fails while the data disk is full.
	CheckWritable() error
}

// Auditor records every mutating call of the API, and every denied one, in
// the audit log. A handler whose change is one store transaction takes the
// call's record (change) and appends it in that transaction; for the rest
// the auditor appends the record when the handler returns. Either way a
// mutating call is refused while the disk cannot take its record.
type Auditor struct {
	Store    AuditStore
	Failures *audit.Failures
	Log      *slog.Logger
	// RequireReason refuses destructive calls (restores, backup deletions,
	// rollbacks, upgrades, node removal, identity revocation, rewrapping
	// backup keys) that give no reason.
	RequireReason bool
}

type pendingKey struct{}

// pending is the audit record of one mutating call in progress.
type pending struct {
	rec  audit.Record
	done bool
}

// change returns the audit record of the mutating call in ctx, naming
// target, for the store to append in the transaction of the change, and a
// func to call once that transaction committed. Outside an audited call
// both do nothing.
func change(ctx context.Context, target string) ([]audit.Record, func()) {
	p, ok := ctx.Value(pendingKey{}).(*pending)
	if !ok {
		return nil, func() {}
	}
	rec := p.rec
	rec.Target, rec.Result = target, audit.ResultOK
	return []audit.Record{rec}, func() { p.done = true }
}

// auditActor names who acted and on what, for a call whose caller the
// interceptors do not know (Enroll: the join token), when the auditor
// writes its record.
func auditActor(ctx context.Context, actor, target string) {
	if p, ok := ctx.Value(pendingKey{}).(*pending); ok {
		p.rec.Actor, p.rec.Target = actor, target
	}
}

// auditTarget names what a call acted on (a job), keeping the actor the
// interceptors found, when the auditor writes its record.
func auditTarget(ctx context.Context, target string) {
	if p, ok := ctx.Value(pendingKey{}).(*pending); ok {
		p.rec.Target = target
	}
}

// actorOf names the caller of ctx for the audit log.
func actorOf(ctx context.Context) (actor, role string) {
	if p, ok := auth.PrincipalFromContext(ctx); ok {
		return p.Name, string(p.Role)
	}
	if id, ok := auth.NodeFromContext(ctx); ok {
		return "node/" + id.ID, ""
	}
	return "", ""
}

func clientOf(ctx context.Context) string {
	if p, ok := peer.FromContext(ctx); ok {
		return limit.Host(p.Addr)
	}
	return ""
}

// reasonOf returns the call's change reason, checked.
func reasonOf(ctx context.Context) (string, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	vals := md.Get(ReasonHeader)
	if len(vals) == 0 {
		return "", nil
	}
	r := strings.TrimSpace(strings.Join(vals, " "))
	if len(r) > MaxReason || strings.IndexFunc(r, func(c rune) bool { return !unicode.IsPrint(c) }) >= 0 {
		return "", invalid("reason: at most %d printable characters", MaxReason)
	}
	return r, nil
}

// destructive reports whether a call needs a reason when reasons are
// required: its rule says so, or it submits a job of a destructive kind.
func destructive(rule access.Rule, req any) bool {
	if r, ok := req.(*forlockv1.SubmitJobRequest); ok {
		return protocol.KindOf(r.GetSpec()).Destructive()
	}
	return rule.Destructive
}

// Unary is the unary server interceptor; it runs after authentication.
func (a *Auditor) Unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	rule := access.RuleFor(info.FullMethod)
	if !rule.Mutating {
		return h(ctx, req)
	}
	reason, err := reasonOf(ctx)
	if err != nil {
		return nil, err
	}
	if reason == "" && a.RequireReason && destructive(rule, req) {
		return nil, status.Errorf(codes.FailedPrecondition,
			"a reason is required for %s: give one with --reason (e.g. a change ticket)", info.FullMethod)
	}
	// Fail closed: a change whose record cannot be written is not made.
	if err := a.Store.CheckWritable(); err != nil {
		return nil, toStatus(ctx, a.Log, err)
	}
	actor, role := actorOf(ctx)
	p := &pending{rec: audit.Record{
		Actor: actor, Role: role, Client: clientOf(ctx), Method: info.FullMethod, Reason: reason,
	}}
	if m, ok := req.(proto.Message); ok {
		p.rec.Summary = audit.Summarize(m)
	}
	resp, err := h(context.WithValue(ctx, pendingKey{}, p), req)
	switch status.Code(err) {
	case codes.Unauthenticated, codes.ResourceExhausted:
		// A refused credential (a wrong join token) was counted by the
		// checker into the per-minute aggregate: a flood of them is not a
		// flood of writes. ResourceExhausted is a blocked client or a full
		// disk, which could not take the record anyway.
		return resp, err
	}
	if p.done {
		return resp, err
	}
	rec := p.rec
	rec.Result = audit.ResultOK
	if err != nil {
		st := status.Convert(err)
		rec.Result, rec.Error = st.Code().String(), st.Message()
	}
	if werr := a.Store.Audit(rec); werr != nil {
		a.Log.ErrorContext(ctx, "audit record not written", "method", info.FullMethod, "actor", actor, "result", rec.Result, "err", werr)
		if err == nil {
			// The change was made: say so, and that it is not recorded.
			return nil, status.Errorf(codes.Unavailable, "the change was made but its audit record could not be written (%v): check the control plane", werr)
		}
	}
	return resp, err
}

// Denied records a call by a valid identity refused for lack of permission
// (auth.Checker.Denied).
func (a *Auditor) Denied(ctx context.Context, p access.Principal, method string, err error) {
	reason, _ := reasonOf(ctx)
	rec := audit.Record{Actor: p.Name, Role: string(p.Role), Client: clientOf(ctx), Method: method,
		Result: codes.PermissionDenied.String(), Error: status.Convert(err).Message(), Reason: reason}
	if werr := a.Store.Audit(rec); werr != nil {
		a.Log.ErrorContext(ctx, "audit record of a denied call not written", "method", method, "actor", p.Name, "err", werr)
	}
}

// Failed counts a refused credential (auth.Checker.Failed): failures are
// written as one record per client, method and reason a minute (Run).
func (a *Auditor) Failed(ctx context.Context, method string, err error) {
	st := status.Convert(err)
	a.Failures.Add(time.Now(), clientOf(ctx), method, st.Code().String(), st.Message())
}

// Run writes the aggregated authentication failures every flush until
// ctx ends, then the rest.
func (a *Auditor) Run(ctx context.Context, flush time.Duration) error {
	t := time.NewTicker(flush)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			a.flush(ctx, true)
			return nil
		case <-t.C:
			a.flush(ctx, false)
		}
	}
}

func (a *Auditor) flush(ctx context.Context, all bool) {
	recs := a.Failures.Drain(time.Now(), all)
	if len(recs) == 0 {
		return
	}
	if err := a.Store.Audit(recs...); err != nil {
		a.Log.ErrorContext(ctx, "audit records of failed authentications not written", "records", len(recs), "err", err)
	}
}
