package api

import (
	"context"
	"log/slog"
	"slices"
	"strings"

	"google.golang.org/grpc"

	"github.com/forlock/fleet/controlplane/internal/auth"
	"github.com/forlock/fleet/controlplane/internal/jobs"
	"github.com/forlock/fleet/controlplane/internal/registry"
	"github.com/forlock/fleet/internal/protocol"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// Paging limits of ListJobs.
const (
	defaultPageSize = 50
	maxPageSize     = 1000
)

// JobAPI implements forlockv1.JobService.
type JobAPI struct {
	forlockv1.UnsafeJobServiceServer

	Jobs     *jobs.Engine
	Registry *registry.Registry
	Log      *slog.Logger
}

// SubmitJob implements JobService.SubmitJob.
func (a *JobAPI) SubmitJob(ctx context.Context, req *forlockv1.SubmitJobRequest) (*forlockv1.SubmitJobResponse, error) {
	if err := needKind(ctx, req.GetSpec()); err != nil {
		return nil, err
	}
	reason, err := reasonOf(ctx)
	if err != nil {
		return nil, err
	}
	by := jobs.Submitter{Reason: reason, Scope: scopeOf(ctx)}
	if p, ok := auth.PrincipalFromContext(ctx); ok {
		by.Name = p.Name
	}
	recs, done := change(ctx, "")
	by.Audit = recs
	j, created, err := a.Jobs.SubmitAs(ctx, req, by)
	if err != nil {
		return nil, toStatus(ctx, a.Log, err)
	}
	if created {
		done() // its record was committed with it
	} else {
		auditTarget(ctx, "job/"+j.GetId()) // the existing job: the auditor records the call
	}
	if created {
		a.Log.InfoContext(ctx, "job submitted", "job_id", j.GetId(), "kind", j.GetKind(), "tasks", len(j.GetTasks()))
	}
	return &forlockv1.SubmitJobResponse{Job: j, Created: created}, nil
}

// GetJob implements JobService.GetJob.
func (a *JobAPI) GetJob(ctx context.Context, req *forlockv1.GetJobRequest) (*forlockv1.GetJobResponse, error) {
	if req.GetId() == "" {
		return nil, invalid("id is required")
	}
	j, evs, err := a.Jobs.GetWithHistory(req.GetId())
	if err == nil && !seesJob(ctx, a.Registry, j) {
		err = jobs.ErrNotFound
	}
	if err != nil {
		return nil, toStatus(ctx, a.Log, err)
	}
	if !req.GetIncludeHistory() {
		evs = nil
	}
	return &forlockv1.GetJobResponse{Job: j, History: evs}, nil
}

// ListJobs implements JobService.ListJobs.
func (a *JobAPI) ListJobs(ctx context.Context, req *forlockv1.ListJobsRequest) (*forlockv1.ListJobsResponse, error) {
	kind, err := kindFilter(req.GetKind())
	if err != nil {
		return nil, err
	}
	f := jobs.Filter{Kind: kind, States: req.GetStates(), PageToken: req.GetPageToken(), StripTaskNotes: true}
	f.Limit = int(req.GetPageSize())
	if f.Limit == 0 {
		f.Limit = defaultPageSize
	}
	if f.Limit > maxPageSize {
		return nil, invalid("page_size %d: at most %d", f.Limit, maxPageSize)
	}
	if n := req.GetNode(); n != "" {
		t, err := findInScope(ctx, a.Registry, n)
		if err != nil {
			return nil, toStatus(ctx, a.Log, err)
		}
		f.NodeID = t.ID
	}
	for _, s := range req.GetStates() {
		if _, ok := forlockv1.JobState_name[int32(s)]; !ok || s == forlockv1.JobState_JOB_STATE_UNSPECIFIED {
			return nil, invalid("unknown job state %d", s)
		}
	}
	if t := req.GetCreatedAfter(); t != nil {
		f.After = t.AsTime().UnixNano()
	}
	if t := req.GetCreatedBefore(); t != nil {
		f.Before = t.AsTime().UnixNano()
	}
	if len(f.PageToken) > 64 {
		return nil, invalid("page_token is not one this server returned")
	}
	list, next, err := a.Jobs.List(f)
	if err != nil {
		return nil, toStatus(ctx, a.Log, err)
	}
	// A scoped caller's pages may come out short: the page token still
	// moves on by the unfiltered position.
	list = slices.DeleteFunc(list, func(j *forlockv1.Job) bool { return !seesJob(ctx, a.Registry, j) })
	return &forlockv1.ListJobsResponse{Jobs: list, NextPageToken: next}, nil
}

// WatchJob implements JobService.WatchJob.
func (a *JobAPI) WatchJob(req *forlockv1.WatchJobRequest, stream grpc.ServerStreamingServer[forlockv1.WatchJobResponse]) error {
	if req.GetId() == "" {
		return invalid("id is required")
	}
	if j, err := a.Jobs.Get(req.GetId()); err == nil && !seesJob(stream.Context(), a.Registry, j) {
		return toStatus(stream.Context(), a.Log, jobs.ErrNotFound)
	}
	err := a.Jobs.Watch(stream.Context(), req.GetId(), req.GetFromStart(), stream.Send)
	return toStatus(stream.Context(), a.Log, err)
}

// CancelJob implements JobService.CancelJob.
func (a *JobAPI) CancelJob(ctx context.Context, req *forlockv1.CancelJobRequest) (*forlockv1.CancelJobResponse, error) {
	if req.GetId() == "" {
		return nil, invalid("id is required")
	}
	if j, err := a.Jobs.Get(req.GetId()); err == nil && !seesJob(ctx, a.Registry, j) {
		return nil, toStatus(ctx, a.Log, jobs.ErrNotFound)
	}
	auditTarget(ctx, "job/"+req.GetId())
	j, err := a.Jobs.Cancel(ctx, req.GetId(), req.GetReason())
	if err != nil {
		return nil, toStatus(ctx, a.Log, err)
	}
	a.Log.InfoContext(ctx, "job cancelled", "job_id", j.GetId())
	return &forlockv1.CancelJobResponse{Job: j}, nil
}

// kindFilter checks a ListJobs kind: empty (any kind) or a known one, so a
// typo is an error rather than an empty list.
func kindFilter(s string) (protocol.Kind, error) {
	k := protocol.Kind(s)
	if k == "" || k.Valid() {
		return k, nil
	}
	names := make([]string, 0, len(protocol.Kinds()))
	for _, known := range protocol.Kinds() {
		names = append(names, string(known))
	}
	return "", invalid("unknown job kind %q: use one of %s", s, strings.Join(names, ", "))
}
