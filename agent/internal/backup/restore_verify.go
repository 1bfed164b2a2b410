package backup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/forlock/fleet/internal/artifact"
	"github.com/forlock/fleet/internal/backupstore"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// The first part of every restore changes nothing: plan matches each
// artifact with its key and store, and verify reads it whole (checksum,
// every segment decrypted) before the API is stopped. A physical
// PostgreSQL artifact is verified while it is staged instead
// (restore_stage.go).

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
	// pitr is the WAL a point-in-time restore replays after the base.
	pitr *pitrPlan
}

func (it *item) open(ctx context.Context) (io.ReadCloser, error) {
	rc, _, err := it.store.Open(ctx, it.name)
	return rc, err
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

type readCloser struct {
	io.Reader
	close func() error
}

func (r readCloser) Close() error { return r.close() }
