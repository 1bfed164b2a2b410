package backup

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/forlock/fleet/agent/internal/tasks"
	"github.com/forlock/fleet/internal/artifact"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// A restore drill (DrillHandler, kind "verify_backup") proves a restore
// point restorable without touching the node: each artifact is verified as
// a restore verifies it (checksum, every segment decrypted), then restored
// into a scratch container beside the node (drill_scratch.go) and the counts
// recorded at backup time are compared with what the scratch server holds.
// The live containers are only inspected (for their image): never stopped,
// never exec'd into. Scratch containers are removed when the drill ends,
// and any a crashed drill left are removed when the next one starts.
//
// A drill that fails is still a task that reports: its artifacts come back
// with their DrillResult (passed false, the reason), and the task fails with
// the reason, so both the job and the catalog show it.

// Default limits of a drill's scratch containers.
const (
	DefaultDrillNanoCPUs = 1_000_000_000 // one CPU
	DefaultDrillMemory   = 1 << 30       // 1 GiB
	// DefaultDrillStartTimeout bounds the wait for a scratch server to
	// accept connections (Redis loads the RDB before it does).
	DefaultDrillStartTimeout = 2 * time.Minute
)

// DrillHandler runs verify_backup tasks.
type DrillHandler struct{ c *core }

// NewDrillHandler checks cfg and returns the verify_backup task handler.
func NewDrillHandler(cfg Config) (*DrillHandler, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	return &DrillHandler{c: &core{cfg: cfg}}, nil
}

// Run drills the restore point's artifacts.
func (h *DrillHandler) Run(ctx context.Context, a tasks.Assignment, report func(*forlockv1.Progress)) (tasks.Result, error) {
	c := h.c
	v := a.Spec.GetVerifyBackup()
	if v == nil {
		return tasks.Result{}, errors.New("not a verify_backup task")
	}
	if c.cfg.Docker == nil {
		return tasks.Result{}, fmt.Errorf("a restore drill needs the Docker Engine: %s", c.cfg.DockerUnavailable)
	}
	if left, err := c.cfg.Docker.RemoveScratch(ctx, "postgres", "redis"); err != nil {
		return tasks.Result{}, fmt.Errorf("remove the scratch containers of an earlier drill: %w", err)
	} else if len(left) > 0 {
		c.cfg.Logger.Warn("drill: removed scratch containers an earlier drill left", "containers", strings.Join(left, ", "))
	}
	items, err := c.plan(v.GetArtifacts(), a.Keys)
	defer func() {
		for _, it := range items {
			it.close()
		}
	}()
	if err != nil {
		return tasks.Result{}, err
	}
	p := startProgress(report)
	defer p.stop()

	started := c.cfg.Now()
	res := &forlockv1.DrillResult{StartedAt: timestamppb.New(started), JobId: a.JobID}
	for i, it := range items {
		phase := fmt.Sprintf("drill %s (%d/%d)", it.info.name, i+1, len(items))
		p.step(phase, uint32(i*100/len(items)), nil) //nolint:gosec // a few items
		counts, err := c.drillOne(ctx, it, p, phase)
		res.Counts = append(res.Counts, counts...)
		if err != nil {
			res.Reason = fmt.Sprintf("%s artifact %s: %v", it.info.name, it.art.GetId(), err)
			break
		}
	}
	if ctx.Err() != nil && res.Reason == "" {
		res.Reason = "the drill was stopped: " + context.Cause(ctx).Error()
	}
	res.Passed = res.Reason == ""
	res.DurationMs = uint64(max(c.cfg.Now().Sub(started).Milliseconds(), 0)) //nolint:gosec // not negative
	p.stop()
	out := drillResult(res, items)
	if !res.Passed {
		return out, fmt.Errorf("drill failed: %s", res.Reason)
	}
	return out, nil
}

// drillOne verifies one artifact and restores it into scratch.
func (c *core) drillOne(ctx context.Context, it *item, p *progress, phase string) ([]*forlockv1.DrillCount, error) {
	if err := c.verify(ctx, it, func(size func() int64) { p.step(phase+": verify", 0, size) }); err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	switch it.info.name {
	case artifact.KindPostgres:
		return c.drillPostgres(ctx, it)
	case artifact.KindRedis:
		return c.drillRedis(ctx, it)
	}
	return nil, nil // config: verified; nothing to restore beside the node
}

// drillResult is the task's result: each artifact (its ID and kind only)
// with the drill's result, and lines for people.
func drillResult(res *forlockv1.DrillResult, items []*item) tasks.Result {
	var out tasks.Result
	for _, it := range items {
		out.Artifacts = append(out.Artifacts, &forlockv1.Artifact{Id: it.art.GetId(), Kind: it.art.GetKind(),
			RestorePointId: it.art.GetRestorePointId(), Drill: res})
	}
	for _, n := range res.GetCounts() {
		mark := "ok"
		if n.GetExpected() != n.GetGot() {
			mark = "DIFFERS"
		}
		out.Details = append(out.Details, fmt.Sprintf("%s %s: expected %d, got %d %s", kindName(n.GetKind()), n.GetName(), n.GetExpected(), n.GetGot(), mark))
	}
	d := time.Duration(res.GetDurationMs()) * time.Millisecond //nolint:gosec // a duration
	if res.GetPassed() {
		out.Message = fmt.Sprintf("drill passed in %s: %d artifacts restored into scratch, %d counts equal", d, len(items), len(res.GetCounts()))
	} else {
		out.Message = fmt.Sprintf("drill failed after %s: %s", d, res.GetReason())
	}
	return out
}
