package backup

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/forlock/fleet/agent/internal/dbsource"
	"github.com/forlock/fleet/agent/internal/tasks"
	"github.com/forlock/fleet/internal/artifact"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// RestoreHandler runs restore tasks.
type RestoreHandler struct{ c *core }

// NewRestoreHandler checks cfg and returns the restore task handler.
func NewRestoreHandler(cfg Config) (*RestoreHandler, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	return &RestoreHandler{c: &core{cfg: cfg}}, nil
}

// Run verifies every artifact, then restores PostgreSQL and Redis with
// the API stopped, and starts the API again whatever happened.
func (h *RestoreHandler) Run(ctx context.Context, a tasks.Assignment, report func(*forlockv1.Progress)) (tasks.Result, error) {
	c := h.c
	r := a.Spec.GetRestore()
	if r == nil {
		return tasks.Result{}, errors.New("not a restore task")
	}
	if c.cfg.Docker == nil {
		return tasks.Result{}, fmt.Errorf("restore needs the Docker Engine: %s", c.cfg.DockerUnavailable)
	}
	items, err := c.plan(r.GetArtifacts(), a.Keys)
	defer func() {
		for _, it := range items {
			it.close()
		}
	}()
	if err != nil {
		return tasks.Result{}, fmt.Errorf("%w; nothing was stopped or changed", err)
	}
	p := startProgress(report)
	defer p.stop()

	// 1. Verify everything before touching anything. A physical PostgreSQL
	// artifact is verified as it is staged (stagePhysical), which stops
	// nothing either.
	verified := 0
	for i, it := range items {
		if it.physical {
			continue
		}
		verified++
		if err := c.verify(ctx, it, func(size func() int64) {
			p.step(fmt.Sprintf("verify %s (%d/%d)", it.info.name, i+1, len(items)), uint32(i*50/len(items)), size) //nolint:gosec // a few items
		}); err != nil {
			return tasks.Result{}, fmt.Errorf("verify %s artifact %s: %w; nothing was stopped or changed", it.info.name, it.art.GetId(), err)
		}
	}
	if verified > 0 {
		c.cfg.Logger.Info("restore: verified", "artifacts", verified)
	}
	pg, rd, cf := byKind(items, artifact.KindPostgres), byKind(items, artifact.KindRedis), byKind(items, artifact.KindConfig)
	var rt redisTarget
	if rd != nil {
		if rt, err = c.redisTarget(ctx); err != nil {
			return tasks.Result{}, fmt.Errorf("restore redis: %w; nothing was stopped or changed", err)
		}
	}
	if isPITR(r) {
		if pg.pitr, err = c.planPITR(ctx, r, pg, a.Keys, p); err != nil {
			return tasks.Result{}, fmt.Errorf("point-in-time restore: %w; nothing was stopped or changed", err)
		}
		defer pg.pitr.close()
	}
	if pg != nil && pg.physical {
		if pg.dataDir, err = c.stagePhysical(ctx, pg, p); err != nil {
			return tasks.Result{}, fmt.Errorf("restore postgres: %w; nothing was stopped or changed", err)
		}
		defer c.unstage(ctx, pg)
		c.cfg.Logger.Info("restore: staged the base backup", "dir", pg.dataDir)
		if pg.pitr != nil {
			if err := c.stageWAL(ctx, pg.pitr, pg.dataDir, p); err != nil {
				return tasks.Result{}, fmt.Errorf("point-in-time restore: %w; nothing was stopped or changed", err)
			}
		}
	}
	var res tasks.Result
	var done []string
	if pg != nil || rd != nil {
		applied, err := c.apply(ctx, pg, rd, rt, p)
		res.Details = append(res.Details, applied...)
		if err != nil {
			return res, err
		}
		if pg != nil {
			done = append(done, "postgres")
		}
		if rd != nil {
			done = append(done, "redis")
		}
	}
	msg := ""
	if len(done) > 0 {
		msg = "restored " + strings.Join(done, " and ") + "; the API is healthy"
	}
	if cf != nil {
		line := fmt.Sprintf("config: verified %s; not applied automatically: decrypt it with `forlockctl backup decrypt` and apply by hand", cf.art.GetLocation())
		res.Details = append(res.Details, line)
		msg = strings.TrimPrefix(msg+"; config verified, not applied: "+cf.art.GetLocation(), "; ")
	}
	res.Message = msg
	return res, nil
}

// apply stops the API, restores what it is given, and starts the API
// again, always, waiting until it is healthy.
func (c *core) apply(ctx context.Context, pg, rd *item, rt redisTarget, p *progress) (details []string, err error) {
	d := c.cfg.Docker
	p.step("stop api", 50, nil)
	if err := d.Stop(ctx, "api", c.cfg.StopTimeout); err != nil {
		// It may be down or half-stopped: start it again all the same.
		return nil, errors.Join(fmt.Errorf("stop the API: %w; nothing was restored", err), c.startAPI(ctx, p))
	}
	c.cfg.Logger.Info("restore: API stopped")
	defer func() {
		if serr := c.startAPI(ctx, p); serr != nil {
			err = errors.Join(err, serr)
		}
	}()
	if pg != nil {
		var err error
		if pg.physical {
			pg.swapped = true
			err = c.swapPhysical(ctx, pg.dataDir, pg.pitr != nil, p)
		} else {
			err = c.restorePostgres(ctx, pg, p)
		}
		if err != nil {
			return details, fmt.Errorf("restore postgres: %w", err)
		}
		details = append(details, fmt.Sprintf("postgres: restored %s (%s, %s) from %s", pg.art.GetFileName(), formatName(pg.physical), humanBytes(int64(pg.art.GetPlainBytes())), pg.art.GetLocation())) //nolint:gosec // a size
		if pl := pg.pitr; pl != nil {
			to := "the end of the archived WAL"
			if pl.target != nil {
				to = pl.target.UTC().Format(time.RFC3339Nano)
			}
			details = append(details, fmt.Sprintf("postgres: replayed %d WAL segments of timeline %d to %s and promoted", len(pl.files), pl.tl, to))
		}
	}
	if rd != nil {
		if err := c.restoreRedis(ctx, rd, rt, p); err != nil {
			return details, fmt.Errorf("restore redis: %w", err)
		}
		details = append(details, fmt.Sprintf("redis: restored %s (%s) into %s from %s", rd.art.GetFileName(), humanBytes(rd.plain), rt.path(), rd.art.GetLocation()))
	}
	return details, nil
}

// formatName names a PostgreSQL artifact's format.
func formatName(physical bool) string {
	if physical {
		return "physical"
	}
	return "logical"
}

// startAPI starts the API container and waits until it is healthy, with
// its own deadline: it runs after failures and cancellations too.
func (c *core) startAPI(ctx context.Context, p *progress) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.cfg.HealthTimeout+time.Minute)
	defer cancel()
	p.step("start api", 95, nil)
	if err := c.cfg.Docker.Start(ctx, "api"); err != nil {
		return fmt.Errorf("start the API again: %w: start it by hand", err)
	}
	if err := c.waitHealthy(ctx, "api"); err != nil {
		return fmt.Errorf("the API did not come back healthy: %w", err)
	}
	c.cfg.Logger.Info("restore: API started and healthy")
	return nil
}

func (c *core) restorePostgres(ctx context.Context, it *item, p *progress) error {
	body, err := it.openPlain(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = body.Close() }()
	var n counter
	p.step("restore postgres", 60, n.load)
	return dbsource.Postgres{Exec: c.cfg.Docker}.Restore(ctx, countingReader{r: body, c: &n})
}

// waitHealthy waits until the container of service runs and its
// healthcheck, if it has one, says healthy; for the API, an answer of its
// health endpoint (APIReady) counts too.
func (c *core) waitHealthy(ctx context.Context, service string) error {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.HealthTimeout)
	defer cancel()
	var last string
	for {
		st, err := c.cfg.Docker.State(ctx, service)
		if err == nil {
			if st.Running() && (st.Health == "" || st.Health == "healthy") {
				return nil
			}
			if service == "api" && c.cfg.APIReady != nil && st.Running() && st.Health != "unhealthy" && c.cfg.APIReady(ctx) == nil {
				return nil
			}
			last = st.Status
			if st.Health != "" {
				last += ", " + st.Health
			}
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("container of %s still %s after %s", service, last, c.cfg.HealthTimeout)
		case <-time.After(250 * time.Millisecond):
		}
	}
}
