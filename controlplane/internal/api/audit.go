package api

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"strconv"
	"strings"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/forlock/fleet/controlplane/internal/audit"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// AuditLogStore is the part of the store AuditAPI needs.
type AuditLogStore interface {
	ScanAudit(from uint64, fn func(audit.Entry) bool) error
	VerifyAudit(pub ed25519.PublicKey, outside []audit.Checkpoint) (audit.Report, error)
}

// AuditAPI implements forlockv1.AuditService.
type AuditAPI struct {
	forlockv1.UnsafeAuditServiceServer

	Store AuditLogStore
	// Key verifies checkpoints.
	Key ed25519.PublicKey
	// Outside lists the files holding checkpoints kept outside the
	// database (the checkpoint file, the sink).
	Outside []string
	Log     *slog.Logger
}

// VerifyAuditLog checks the audit chain in the store against the
// checkpoints kept outside it (the files at outside): the VerifyAudit call
// and the control plane's periodic check. Checkpoints that cannot be read
// are a problem of the report, not an error.
func VerifyAuditLog(st AuditLogStore, key ed25519.PublicKey, outside []string) (audit.Report, error) {
	var cps []audit.Checkpoint
	for _, path := range outside {
		c, err := audit.ReadCheckpoints(path)
		if err != nil {
			return audit.Report{Problem: "the checkpoints outside the database cannot be read: " + err.Error()}, nil
		}
		cps = append(cps, c...)
	}
	return st.VerifyAudit(key, cps)
}

// Audit page sizes.
const (
	defaultAuditPage = 100
	maxAuditPage     = 1000
)

// ListAuditRecords implements AuditService.ListAuditRecords.
func (a *AuditAPI) ListAuditRecords(ctx context.Context, req *forlockv1.ListAuditRecordsRequest) (*forlockv1.ListAuditRecordsResponse, error) {
	if err := unscoped(ctx, "the audit log"); err != nil {
		return nil, err
	}
	size := int(req.GetPageSize())
	switch {
	case size == 0:
		size = defaultAuditPage
	case size > maxAuditPage:
		return nil, invalid("page_size %d: at most %d", size, maxAuditPage)
	}
	if err := req.GetSince().CheckValid(); req.Since != nil && err != nil {
		return nil, invalid("since: %v", err)
	}
	if len(req.GetActor()) > 256 || len(req.GetMethod()) > 256 {
		return nil, invalid("actor and method filters: at most 256 characters")
	}
	// A page token is the next sequence and a digest of the filters, so a
	// token cannot be reused with other filters.
	filters := auditFilterDigest(req)
	from := uint64(1)
	if t := req.GetPageToken(); t != "" {
		seq, digest, ok := strings.Cut(t, ".")
		n, err := strconv.ParseUint(seq, 10, 64)
		if !ok || err != nil || digest != filters {
			return nil, invalid("page_token is not one this server returned for these filters: start again without it")
		}
		from = n
	}
	resp := &forlockv1.ListAuditRecordsResponse{}
	err := a.Store.ScanAudit(from, func(e audit.Entry) bool {
		if len(resp.Records) == size {
			resp.NextPageToken = strconv.FormatUint(e.Seq, 10) + "." + filters
			return false
		}
		if auditMatches(req, e) {
			resp.Records = append(resp.Records, auditProto(e))
		}
		return true
	})
	if err != nil {
		return nil, toStatus(ctx, a.Log, err)
	}
	return resp, nil
}

func auditFilterDigest(req *forlockv1.ListAuditRecordsRequest) string {
	h := sha256.New()
	h.Write([]byte(req.GetActor() + "\x00" + req.GetMethod() + "\x00" + req.GetSince().AsTime().String() + "\x00" + strconv.FormatBool(req.GetFailuresOnly())))
	return hex.EncodeToString(h.Sum(nil)[:8])
}

func auditMatches(req *forlockv1.ListAuditRecordsRequest, e audit.Entry) bool {
	switch {
	case req.GetActor() != "" && e.Actor != req.GetActor():
		return false
	case req.GetMethod() != "" && !strings.Contains(e.Method, req.GetMethod()):
		return false
	case req.Since != nil && e.Time.Before(req.GetSince().AsTime()):
		return false
	case req.GetFailuresOnly() && e.Result == audit.ResultOK:
		return false
	}
	return true
}

func auditProto(e audit.Entry) *forlockv1.AuditRecord {
	return &forlockv1.AuditRecord{
		Seq: e.Seq, Time: timestamppb.New(e.Time), Actor: e.Actor, Role: e.Role, Client: e.Client, Method: e.Method,
		Target: e.Target, Summary: e.Summary, Result: e.Result, Error: e.Error, Reason: e.Reason, Count: e.Count, Hash: e.Hash,
	}
}

// VerifyAudit implements AuditService.VerifyAudit.
func (a *AuditAPI) VerifyAudit(ctx context.Context, _ *forlockv1.VerifyAuditRequest) (*forlockv1.VerifyAuditResponse, error) {
	if err := unscoped(ctx, "the audit log"); err != nil {
		return nil, err
	}
	rep, err := VerifyAuditLog(a.Store, a.Key, a.Outside)
	if err != nil {
		return nil, toStatus(ctx, a.Log, err)
	}
	return &forlockv1.VerifyAuditResponse{
		Ok: rep.OK(), Records: rep.Records, FirstSeq: rep.First, LastSeq: rep.Last,
		Checkpoints: rep.Checkpoints, BadSeq: rep.Bad, Problem: rep.Problem,
	}, nil
}
