package jobs

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
	"unicode"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/forlock/fleet/controlplane/internal/audit"
	"github.com/forlock/fleet/controlplane/internal/registry"
	"github.com/forlock/fleet/internal/labels"
	"github.com/forlock/fleet/internal/protocol"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// Limits and defaults of a job.
const (
	DefaultDeadline   = time.Hour
	MaxDeadline       = 7 * 24 * time.Hour
	maxIdempotencyKey = 128
	maxTargetNodes    = 100000
)

// Errors the API maps to status codes.
var (
	ErrInvalid  = errors.New("invalid job")
	ErrNotFound = errors.New("job not found")
	ErrEnded    = errors.New("job has already ended")
)

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// Submitter is who submits a job: recorded with it, and bounding its nodes.
type Submitter struct {
	// Name is the identity ("" for the control plane's own jobs, which
	// name themselves in the idempotency key).
	Name string
	// Reason is the change reason given, if any.
	Reason string
	// Scope bounds the nodes the job may target: a node outside it is not
	// found, a selector or all targets only the nodes inside it, and a task
	// whose node has left it by dispatch time is skipped.
	Scope labels.Selector
	// Audit are the submit's audit records: committed with the job, in the
	// same transaction, with their target set to the job. A submit that
	// finds its idempotency key returns the existing job and writes none.
	Audit []audit.Record
}

// Submit validates and stores a job and returns it once it is durable. A
// known idempotency key returns the existing job with created false.
func (e *Engine) Submit(ctx context.Context, req *forlockv1.SubmitJobRequest) (*forlockv1.Job, bool, error) {
	return e.SubmitAs(ctx, req, Submitter{})
}

// SubmitAs is Submit on behalf of a submitter.
func (e *Engine) SubmitAs(ctx context.Context, req *forlockv1.SubmitJobRequest, by Submitter) (*forlockv1.Job, bool, error) {
	kind := protocol.KindOf(req.GetSpec())
	if !kind.Valid() {
		return nil, false, invalid("spec names no job kind: set exactly one, e.g. health_check")
	}
	rollout, err := validRollout(req.GetRollout())
	if err != nil {
		return nil, false, err
	}
	key := req.GetIdempotencyKey()
	if err := validKey(key); err != nil {
		return nil, false, err
	}
	targets, err := e.resolve(req.GetTarget(), by.Scope)
	if err != nil {
		return nil, false, err
	}
	spec, err := e.prepare(req.GetSpec(), targets, by.Scope)
	if err != nil {
		return nil, false, err
	}

	// A full disk fails the submit now rather than at the caller's
	// deadline.
	if err := e.store.CheckWritable(); err != nil {
		return nil, false, err
	}

	e.mu.Lock()
	if key != "" {
		id, ok := e.keys[key]
		if !ok {
			id, ok, err = e.store.JobIDByKey(key)
		}
		if err != nil || ok {
			e.mu.Unlock()
			if err != nil {
				return nil, false, err
			}
			j, err := e.Get(id)
			return j, false, err
		}
	}
	now := time.Now()
	pb := &forlockv1.Job{
		Id: newJobID(now), Kind: string(kind), Spec: spec, Target: proto.CloneOf(req.GetTarget()),
		Rollout: rollout, IdempotencyKey: key, State: forlockv1.JobState_JOB_STATE_RUNNING,
		CreatedAt: timestamppb.New(now), Deadline: timestamppb.New(now.Add(rollout.GetDeadline().AsDuration())),
		CreatedBy: by.Name, Reason: by.Reason, Scope: by.Scope.String(),
	}
	for i, t := range targets {
		pb.Tasks = append(pb.Tasks, &forlockv1.Task{
			Id: fmt.Sprintf("%s-%05d", pb.GetId(), i), NodeId: t.ID, NodeName: t.Name,
			State: forlockv1.TaskState_TASK_STATE_QUEUED, Canary: i < int(rollout.GetCanary()),
			UpdatedAt: timestamppb.New(now),
		})
	}
	j := newJob(pb)
	j.committed = make(chan error, 1) // the commit marks it durable and schedules it, or drops it
	for _, r := range by.Audit {
		r.Target = "job/" + pb.GetId()
		j.audit = append(j.audit, r)
	}
	e.jobs[pb.GetId()] = j
	if key != "" {
		e.keys[key] = pb.GetId()
	}
	e.record(j, nil, fmt.Sprintf("job submitted: %s on %d node(s)", kind, len(targets)), nil)
	e.mu.Unlock()

	select {
	case err := <-j.committed:
		if err != nil {
			return nil, false, fmt.Errorf("job not submitted: %w", err)
		}
	case <-ctx.Done():
		return nil, false, ctx.Err()
	}
	e.mu.Lock()
	snap := proto.CloneOf(j.pb)
	e.mu.Unlock()
	return snap, true, nil
}

func validRollout(r *forlockv1.Rollout) (*forlockv1.Rollout, error) {
	out := proto.CloneOf(r)
	if out == nil {
		out = &forlockv1.Rollout{}
	}
	d := DefaultDeadline
	if out.GetDeadline() != nil {
		if err := out.GetDeadline().CheckValid(); err != nil {
			return nil, invalid("deadline: %v", err)
		}
		d = out.GetDeadline().AsDuration()
	}
	if d <= 0 || d > MaxDeadline {
		return nil, invalid("deadline %s out of range: more than 0 and at most %s", d, MaxDeadline)
	}
	out.Deadline = durationpb.New(d)
	switch out.GetOfflinePolicy() {
	case forlockv1.OfflinePolicy_OFFLINE_POLICY_UNSPECIFIED:
		out.OfflinePolicy = forlockv1.OfflinePolicy_OFFLINE_POLICY_WAIT
	case forlockv1.OfflinePolicy_OFFLINE_POLICY_WAIT, forlockv1.OfflinePolicy_OFFLINE_POLICY_SKIP:
	default:
		return nil, invalid("unknown offline policy %d: use WAIT or SKIP", out.GetOfflinePolicy())
	}
	return out, nil
}

func validKey(k string) error {
	if len(k) > maxIdempotencyKey {
		return invalid("idempotency key longer than %d bytes", maxIdempotencyKey)
	}
	for _, r := range k {
		if !unicode.IsPrint(r) {
			return invalid("idempotency key: only printable characters are allowed")
		}
	}
	return nil
}

// resolve turns a target into nodes, ordered by name.
func (e *Engine) resolve(t *forlockv1.Target, scope labels.Selector) ([]registry.Target, error) {
	forms := 0
	if len(t.GetNodes()) > 0 {
		forms++
	}
	if t.GetLabelSelector() != "" {
		forms++
	}
	if t.GetAll() {
		forms++
	}
	if forms != 1 {
		return nil, invalid("target: give exactly one of nodes, label_selector or all")
	}
	var out []registry.Target
	switch {
	case len(t.GetNodes()) > 0:
		if len(t.GetNodes()) > maxTargetNodes {
			return nil, invalid("target: more than %d nodes", maxTargetNodes)
		}
		seen := map[string]bool{}
		for _, ref := range t.GetNodes() {
			n, ok := e.reg.Lookup(ref)
			if ok && !e.reg.Matches(n.ID, scope) {
				ok = false // outside the scope is the same as absent
			}
			if !ok {
				return nil, invalid("target: node %q not found (see forlockctl nodes list)", ref)
			}
			if !seen[n.ID] {
				seen[n.ID] = true
				out = append(out, n)
			}
		}
		sortTargets(out)
	case t.GetAll():
		out = e.reg.Select(scope)
	default:
		sel, err := labels.ParseSelector(t.GetLabelSelector())
		if err != nil {
			return nil, invalid("target: %v", err)
		}
		for _, n := range e.reg.Select(sel) {
			if e.reg.Matches(n.ID, scope) {
				out = append(out, n)
			}
		}
	}
	if len(out) == 0 {
		return nil, invalid("target matches no node")
	}
	return out, nil
}

// newJobID returns an ID that sorts by creation time: 16 hex digits of Unix
// nanoseconds, then 8 random hex digits.
func newJobID(now time.Time) string {
	b := make([]byte, 12)
	binary.BigEndian.PutUint64(b, uint64(now.UnixNano()))
	_, _ = rand.Read(b[8:])
	return hex.EncodeToString(b)
}
