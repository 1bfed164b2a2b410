package backup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/forlock/fleet/agent/internal/backupstore"
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

// item is one artifact to restore and where it is.
type item struct {
	art   *forlockv1.Artifact
	info  kindInfo
	key   []byte
	store backupstore.Store
	name  string
	close func()
	plain int64 // plaintext size, counted while verifying a Redis artifact

	// A physical PostgreSQL artifact: staged in dataDir before anything
	// stops; swapped once the swap was tried (the staged files are then
	// gone, moved in or removed).
	physical bool
	dataDir  string
	swapped  bool
}

func (it *item) open(ctx context.Context) (io.ReadCloser, error) {
	rc, _, err := it.store.Open(ctx, it.name)
	return rc, err
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
	if pg != nil && pg.physical {
		if pg.dataDir, err = c.stagePhysical(ctx, pg, p); err != nil {
			return tasks.Result{}, fmt.Errorf("restore postgres: %w; nothing was stopped or changed", err)
		}
		defer c.unstage(ctx, pg)
		c.cfg.Logger.Info("restore: staged the base backup", "dir", pg.dataDir)
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

// plan matches each artifact with its key and store: one per kind.
func (c *core) plan(arts []*forlockv1.Artifact, keys []*forlockv1.TaskKey) ([]*item, error) {
	if len(arts) == 0 {
		return nil, errors.New("nothing to restore: the task names no artifact")
	}
	var items []*item
	for _, a := range arts {
		info, ok := infoOf(a.GetKind())
		if !ok {
			return items, fmt.Errorf("artifact %s: unknown kind %s", a.GetId(), a.GetKind())
		}
		if byKind(items, info.name) != nil {
			return items, fmt.Errorf("two %s artifacts in one restore (%s and %s): restore one", info.name, byKind(items, info.name).art.GetId(), a.GetId())
		}
		i := slices.IndexFunc(keys, func(k *forlockv1.TaskKey) bool { return k.GetName() == a.GetId() })
		if i < 0 || len(keys[i].GetPlainKey()) == 0 {
			return items, fmt.Errorf("the task carries no data key for artifact %s", a.GetId())
		}
		st, name, closeFn, err := c.source(a.GetLocation())
		if err != nil {
			return items, fmt.Errorf("artifact %s: %w", a.GetId(), err)
		}
		physical := a.GetPostgresFormat() == forlockv1.PostgresFormat_POSTGRES_FORMAT_PHYSICAL
		items = append(items, &item{art: a, info: info, key: keys[i].GetPlainKey(), store: st, name: name, close: closeFn, physical: physical})
	}
	// Restore in the standard order, whatever the catalog's.
	slices.SortFunc(items, func(x, y *item) int {
		return slices.Index(allKinds, x.art.GetKind()) - slices.Index(allKinds, y.art.GetKind())
	})
	return items, nil
}

func byKind(items []*item, k artifact.Kind) *item {
	for _, it := range items {
		if it.info.name == k {
			return it
		}
	}
	return nil
}

// verify reads the whole artifact: its checksum against the catalog's,
// every segment decrypting with its key, and the header's kind. For Redis
// it also counts the plaintext, which the copy into the container needs.
func (c *core) verify(ctx context.Context, it *item, track func(func() int64)) error {
	rc, err := it.open(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = rc.Close() }()
	var n counter
	track(n.load)
	hdr, err := artifact.Verify(countingReader{r: backupstore.ContextReader(ctx, rc), c: &n}, it.art.GetSha256(), artifact.PlainKey(it.key))
	if err != nil {
		return err
	}
	if hdr.Kind != it.info.name {
		return fmt.Errorf("%w: the file holds a %s artifact, the catalog says %s", artifact.ErrCorrupted, hdr.Kind, it.info.name)
	}
	if it.info.name == artifact.KindPostgres && it.physical != strings.HasSuffix(hdr.FileName, physicalExt) {
		return fmt.Errorf("%w: the file holds %s, the catalog says it is a %s backup", artifact.ErrCorrupted, hdr.FileName, formatName(it.physical))
	}
	if it.info.name != artifact.KindRedis {
		return nil
	}
	body, err := it.openPlain(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = body.Close() }()
	if it.plain, err = io.Copy(io.Discard, body); err != nil {
		return err
	}
	if want := it.art.GetPlainBytes(); want != 0 && uint64(it.plain) != want { //nolint:gosec // a size
		return fmt.Errorf("%w: %d bytes of RDB, the catalog says %d", artifact.ErrCorrupted, it.plain, want)
	}
	return nil
}

// openPlain opens the artifact's plaintext.
func (it *item) openPlain(ctx context.Context) (io.ReadCloser, error) {
	rc, err := it.open(ctx)
	if err != nil {
		return nil, err
	}
	_, body, err := artifact.Open(backupstore.ContextReader(ctx, rc), artifact.PlainKey(it.key))
	if err != nil {
		_ = rc.Close()
		return nil, err
	}
	return readCloser{Reader: body, close: func() error { _ = body.Close(); return rc.Close() }}, nil
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
			err = c.swapPhysical(ctx, pg.dataDir, p)
		} else {
			err = c.restorePostgres(ctx, pg, p)
		}
		if err != nil {
			return details, fmt.Errorf("restore postgres: %w", err)
		}
		details = append(details, fmt.Sprintf("postgres: restored %s (%s, %s) from %s", pg.art.GetFileName(), formatName(pg.physical), humanBytes(int64(pg.art.GetPlainBytes())), pg.art.GetLocation())) //nolint:gosec // a size
	}
	if rd != nil {
		if err := c.restoreRedis(ctx, rd, rt, p); err != nil {
			return details, fmt.Errorf("restore redis: %w", err)
		}
		details = append(details, fmt.Sprintf("redis: restored %s (%s) into %s from %s", rd.art.GetFileName(), humanBytes(rd.plain), rt.path(), rd.art.GetLocation()))
	}
	return details, nil
}

// unstage removes a staged physical backup that was never swapped in (the
// API could not be stopped, or the task ended before).
func (c *core) unstage(ctx context.Context, it *item) {
	if it.swapped {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	if err := c.helper(ctx, "remove the staged backup", `rm -rf -- "$1/`+incomingDir+`"`, it.dataDir); err != nil {
		c.cfg.Logger.Warn("restore: the staged backup is left; remove it by hand", "path", it.dataDir+"/"+incomingDir, "error", err.Error())
	}
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

// countingReader counts what is read through it.
type countingReader struct {
	r io.Reader
	c *counter
}

func (cr countingReader) Read(p []byte) (int, error) {
	n, err := cr.r.Read(p)
	cr.c.add(n)
	return n, err
}

type readCloser struct {
	io.Reader
	close func() error
}

func (r readCloser) Close() error { return r.close() }
