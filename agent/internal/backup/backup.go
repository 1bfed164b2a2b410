package backup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/forlock/fleet/agent/internal/dbsource"
	"github.com/forlock/fleet/agent/internal/tasks"
	"github.com/forlock/fleet/internal/artifact"
	"github.com/forlock/fleet/internal/backupstore"
	"github.com/forlock/fleet/internal/pki"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// cleanupTimeout bounds removing what a failed backup wrote.
const cleanupTimeout = time.Minute

// core is what both handlers share: the checked config.
type core struct{ cfg Config }

// Handler runs backup tasks.
type Handler struct{ c *core }

// NewHandler checks cfg and returns the backup task handler.
func NewHandler(cfg Config) (*Handler, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	return &Handler{c: &core{cfg: cfg}}, nil
}

// allKinds are the artifacts of a full restore point, in the order they
// are taken.
var allKinds = []forlockv1.ArtifactKind{
	forlockv1.ArtifactKind_ARTIFACT_KIND_POSTGRES, forlockv1.ArtifactKind_ARTIFACT_KIND_REDIS, forlockv1.ArtifactKind_ARTIFACT_KIND_CONFIG,
}

// kindInfo says how one kind of artifact is named and made.
type kindInfo struct {
	name  artifact.Kind // "postgres": key name, header kind, file prefix
	ext   string        // the plain format's extension
	step  string        // the error prefix of the source, e.g. "dump postgres"
	phase string
}

// physicalInfo is the PostgreSQL artifact of a physical backup.
var physicalInfo = kindInfo{artifact.KindPostgres, physicalExt, "base backup postgres", "backup postgres (physical)"}

// physicalExt ends the plain name of a physical PostgreSQL artifact.
const physicalExt = ".base.tar"

// physicalFormat reports whether f asks for a physical PostgreSQL backup.
func physicalFormat(f forlockv1.PostgresFormat) (bool, error) {
	switch f {
	case forlockv1.PostgresFormat_POSTGRES_FORMAT_UNSPECIFIED, forlockv1.PostgresFormat_POSTGRES_FORMAT_LOGICAL:
		return false, nil
	case forlockv1.PostgresFormat_POSTGRES_FORMAT_PHYSICAL:
		return true, nil
	}
	return false, fmt.Errorf("unknown PostgreSQL backup format %d: this agent makes logical (pg_dump) and physical (pg_basebackup) backups", f)
}

func infoOf(k forlockv1.ArtifactKind) (kindInfo, bool) {
	switch k {
	case forlockv1.ArtifactKind_ARTIFACT_KIND_POSTGRES:
		return kindInfo{artifact.KindPostgres, ".dump", "dump postgres", "backup postgres"}, true
	case forlockv1.ArtifactKind_ARTIFACT_KIND_REDIS:
		return kindInfo{artifact.KindRedis, ".rdb", "snapshot redis", "backup redis"}, true
	case forlockv1.ArtifactKind_ARTIFACT_KIND_CONFIG:
		return kindInfo{artifact.KindConfig, ".tar", "archive config", "backup config"}, true
	}
	return kindInfo{}, false
}

// encSuffix follows the plain extension in stored file names.
const encSuffix = ".zst.enc"

// Run makes the restore point. On any failure or cancellation it removes
// every artifact it wrote and fails, naming the step.
func (h *Handler) Run(ctx context.Context, a tasks.Assignment, report func(*forlockv1.Progress)) (tasks.Result, error) {
	c := h.c
	b := a.Spec.GetBackup()
	if b == nil {
		return tasks.Result{}, errors.New("not a backup task")
	}
	if c.cfg.Docker == nil {
		return tasks.Result{}, fmt.Errorf("backup needs the Docker Engine: %s", c.cfg.DockerUnavailable)
	}
	node := c.cfg.Node()
	if err := pki.ValidateNodeName(node); err != nil {
		return tasks.Result{}, fmt.Errorf("node name: %w", err)
	}
	kinds, err := requested(b.GetOnly())
	if err != nil {
		return tasks.Result{}, err
	}
	keys, err := backupKeys(a.Keys, kinds)
	if err != nil {
		return tasks.Result{}, err
	}
	created := c.cfg.Now().UTC()
	dst, err := c.destination(ctx, b.GetDestination(), node)
	if err != nil {
		return tasks.Result{}, fmt.Errorf("destination: %w", err)
	}
	defer dst.close()

	p := startProgress(report)
	defer p.stop()
	var arts []*forlockv1.Artifact
	var written []string
	fail := func(err error) (tasks.Result, error) {
		p.stop()
		if msg := c.remove(ctx, dst.store, written); msg != "" {
			err = fmt.Errorf("%w; %s", err, msg)
		}
		c.cfg.Logger.Warn("backup failed; removed what it wrote", "error", err.Error(), "removed", len(written))
		return tasks.Result{}, err
	}
	physical, err := physicalFormat(b.GetPostgresFormat())
	if err != nil {
		return tasks.Result{}, err
	}
	var pgVersion string
	var base *dbsource.BasePosition // of a physical backup, told once all succeeded
	if physical && slices.Contains(kinds, forlockv1.ArtifactKind_ARTIFACT_KIND_POSTGRES) {
		if pgVersion, err = c.postgresMajor(ctx); err != nil {
			return tasks.Result{}, fmt.Errorf("physical backup: %w", err)
		}
	}
	for i, k := range kinds {
		info, _ := infoOf(k)
		if physical && info.name == artifact.KindPostgres {
			info = physicalInfo
		}
		phase := fmt.Sprintf("%s (%d/%d)", info.phase, i+1, len(kinds))
		var rec recorded
		a, name, err := c.one(ctx, dst, node, info, keys[k], created, c.sourceOf(info), &rec, func(size func() int64) {
			p.step(phase, uint32(i*100/len(kinds)), size) //nolint:gosec // at most 3 kinds
		})
		p.finish(int64(a.GetSizeBytes())) //nolint:gosec // a file size
		if name != "" {
			written = append(written, name)
		}
		if err != nil {
			return fail(err)
		}
		a.Kind = k
		if info.name == artifact.KindPostgres {
			a.PostgresFormat = forlockv1.PostgresFormat_POSTGRES_FORMAT_LOGICAL
			if physical {
				a.PostgresFormat, a.PostgresVersion = forlockv1.PostgresFormat_POSTGRES_FORMAT_PHYSICAL, pgVersion
				pos := rec.base
				a.WalStartLsn, a.WalEndLsn, a.Timeline = pos.StartLSN, pos.EndLSN, pos.Timeline
				a.BackupEndTime = timestamppb.New(pos.EndTime)
				base = &pos
			}
		}
		arts = append(arts, a)
	}
	if err := ctx.Err(); err != nil {
		return fail(fmt.Errorf("backup stopped: %w", err))
	}
	p.stop()
	if base != nil && c.cfg.OnBaseBackup != nil {
		c.cfg.OnBaseBackup(*base)
	}
	return summary(arts, dst.store.Location(strings.TrimSuffix(dst.prefix, "/"))), nil
}

// requested returns the kinds to back up, in the standard order.
func requested(only []forlockv1.ArtifactKind) ([]forlockv1.ArtifactKind, error) {
	if len(only) == 0 {
		return allKinds, nil
	}
	for _, k := range only {
		if _, ok := infoOf(k); !ok {
			return nil, fmt.Errorf("unknown artifact kind %s: this agent backs up postgres, redis and config", k)
		}
	}
	return slices.DeleteFunc(slices.Clone(allKinds), func(k forlockv1.ArtifactKind) bool { return !slices.Contains(only, k) }), nil
}

// backupKeys picks the data key of each kind from the task's keys.
func backupKeys(keys []*forlockv1.TaskKey, kinds []forlockv1.ArtifactKind) (map[forlockv1.ArtifactKind]*forlockv1.TaskKey, error) {
	out := map[forlockv1.ArtifactKind]*forlockv1.TaskKey{}
	for _, k := range kinds {
		info, _ := infoOf(k)
		i := slices.IndexFunc(keys, func(tk *forlockv1.TaskKey) bool { return tk.GetName() == string(info.name) })
		if i < 0 {
			return nil, fmt.Errorf("the task carries no data key for the %s artifact: the control plane must send one per artifact", info.name)
		}
		if tk := keys[i]; len(tk.GetPlainKey()) != 32 || tk.GetKeyId() == "" || len(tk.GetWrappedKey()) == 0 {
			return nil, fmt.Errorf("the data key for the %s artifact is incomplete", info.name)
		}
		out[k] = keys[i]
	}
	return out, nil
}

// one writes one artifact. It returns the name it wrote (or began to
// write) so a later failure can remove it.
func (c *core) one(ctx context.Context, dst target, node string, info kindInfo, key *forlockv1.TaskKey, created time.Time,
	src source, rec *recorded, track func(size func() int64)) (*forlockv1.Artifact, string, error) {
	plainName := fmt.Sprintf("%s_%s%s", info.name, created.Format("20060102_150405"), info.ext)
	fileName := plainName + encSuffix
	name := dst.prefix + fileName
	hdr := artifact.Header{Kind: info.name, Node: node, Created: created, KeyID: key.GetKeyId(),
		WrappedKey: key.GetWrappedKey(), FileName: plainName}

	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pr, pw := io.Pipe()
	var (
		w          atomic.Pointer[artifact.Writer]
		plain      counter
		putClosed  atomic.Bool // Put failed first and closed the pipe
		srcErr     error
		srcFailed  bool
		sha        string
		sourceDone = make(chan struct{})
	)
	track(func() int64 {
		if aw := w.Load(); aw != nil {
			return aw.Size()
		}
		return 0
	})
	go func() {
		defer close(sourceDone)
		aw, err := artifact.NewWriter(pw, hdr, key.GetPlainKey())
		if err == nil {
			w.Store(aw)
			err = src(sctx, countingWriter{w: aw, c: &plain}, rec)
			if cerr := aw.Close(); err == nil {
				err = cerr
			}
			sha = aw.SHA256()
		}
		srcErr, srcFailed = err, err != nil && !putClosed.Load()
		pw.CloseWithError(err) // nil: EOF
	}()
	n, putErr := dst.store.Put(sctx, name, pr)
	if putErr != nil {
		putClosed.Store(true)
		cancel()
		_ = pr.CloseWithError(putErr)
	}
	<-sourceDone

	loc := dst.store.Location(name)
	switch {
	case ctx.Err() != nil:
		return nil, name, fmt.Errorf("%s: stopped: %w", info.step, context.Cause(ctx))
	case errors.Is(putErr, backupstore.ErrFull):
		return nil, name, fmt.Errorf("destination full: %s artifact: %w", info.name, putErr)
	case srcFailed:
		return nil, name, fmt.Errorf("%s: %w", info.step, srcErr)
	case putErr != nil:
		return nil, name, fmt.Errorf("write %s artifact: %w", info.name, putErr)
	case srcErr != nil:
		return nil, name, fmt.Errorf("%s: %w", info.step, srcErr)
	case n <= 0:
		return nil, name, fmt.Errorf("write %s artifact %s: nothing was written", info.name, loc)
	}
	return &forlockv1.Artifact{
		TableCounts:    rec.tables,
		RedisKeys:      rec.redis,
		CountsRecorded: rec.ok,
		CreatedAt:      timestamppb.New(created),
		SizeBytes:      uint64(n),
		Sha256:         sha,
		Compression:    artifact.Compression,
		Cipher:         artifact.Cipher,
		KeyId:          key.GetKeyId(),
		WrappedKey:     key.GetWrappedKey(),
		Location:       loc,
		FileName:       fileName,
		PlainBytes:     uint64(max(plain.load(), 0)), //nolint:gosec // not negative
	}, name, nil
}

// source writes the plain data of a kind into w and records in rec what a
// restore drill will compare.
type source func(ctx context.Context, w io.Writer, rec *recorded) error

// sourceOf returns what writes the plain data of a kind.
func (c *core) sourceOf(info kindInfo) source {
	switch info.name {
	case artifact.KindPostgres:
		if info == physicalInfo {
			return c.baseBackup
		}
		return c.dumpPostgres
	case artifact.KindRedis:
		return c.snapshotRedis
	default:
		return func(ctx context.Context, w io.Writer, _ *recorded) error { return c.archiveConfig(ctx, w) }
	}
}

// remove deletes what a failed backup wrote, with its own deadline (the
// task's context may be over). It returns a message naming what it could
// not remove, or "".
func (c *core) remove(ctx context.Context, st backupstore.Store, names []string) string {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	var left []string
	for _, n := range names {
		if err := st.Delete(ctx, n); err != nil {
			c.cfg.Logger.Error("cannot remove an artifact of a failed backup", "location", st.Location(n), "error", err.Error())
			left = append(left, fmt.Sprintf("%s (%v)", st.Location(n), err))
		}
	}
	if len(left) == 0 {
		return ""
	}
	return "could not remove " + strings.Join(left, ", ") + ": delete by hand"
}

// summary is the result of a successful backup.
func summary(arts []*forlockv1.Artifact, where string) tasks.Result {
	var total int64
	names := make([]string, len(arts))
	details := make([]string, len(arts))
	for i, a := range arts {
		size := int64(a.GetSizeBytes()) //nolint:gosec // a file size
		total += size
		names[i] = kindName(a.GetKind())
		details[i] = fmt.Sprintf("%s: %s, %s (%s plain), sha256 %s", names[i], a.GetLocation(), humanBytes(size),
			humanBytes(int64(a.GetPlainBytes())), a.GetSha256()) //nolint:gosec // a size
	}
	return tasks.Result{
		Message:   fmt.Sprintf("backed up %s: %d artifacts, %s, in %s", strings.Join(names, ", "), len(arts), humanBytes(total), where),
		Details:   details,
		Artifacts: arts,
	}
}

func kindName(k forlockv1.ArtifactKind) string {
	if info, ok := infoOf(k); ok {
		return string(info.name)
	}
	return k.String()
}
