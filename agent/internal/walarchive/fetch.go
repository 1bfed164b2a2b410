package walarchive

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/forlock/fleet/internal/artifact"
	"github.com/forlock/fleet/internal/backupstore"
	"github.com/forlock/fleet/internal/keys"
)

// Keyring unwraps WAL files' data keys with the archive keys a restore task
// carries, by key ID.
type Keyring map[string]*keys.File

// Unwrap is an artifact.UnwrapFunc.
func (k Keyring) Unwrap(keyID string, wrapped []byte) ([]byte, error) {
	f, ok := k[keyID]
	if !ok {
		return nil, fmt.Errorf("%w %q: the task carries no archive key of that ID", keys.ErrUnknownKey, keyID)
	}
	return f.Unwrap(context.Background(), keyID, wrapped)
}

// StoredName is where a WAL file (segment, partial or history file name)
// of timeline tl lives under a node's prefix ("wal/<node-id>/").
func StoredName(prefix string, tl uint32, name string) string {
	return prefix + TimelineDir(tl) + "/" + name + encSuffix
}

// Fetch decrypts one stored WAL file into dst, checking that its header
// names the file asked for (a file moved to another name is refused).
// Every byte written to dst was authenticated, but on error dst may hold a
// prefix: write to a temporary place. A partial segment is stored only up
// to what was flushed when it was shipped; Fetch writes it back whole, the
// rest zeros as pg_receivewal left it, so it can be replayed under the
// segment's own name.
func Fetch(ctx context.Context, st backupstore.Store, prefix string, tl uint32, name string, kr Keyring, dst io.Writer) (int64, error) {
	stored := StoredName(prefix, tl, name)
	rc, _, err := st.Open(ctx, stored)
	if err != nil {
		return 0, err
	}
	defer func() { _ = rc.Close() }()
	h, body, err := artifact.Open(backupstore.ContextReader(ctx, rc), kr.Unwrap)
	if err != nil {
		return 0, fmt.Errorf("WAL %s: %w", st.Location(stored), err)
	}
	defer func() { _ = body.Close() }()
	if h.Kind != artifact.KindWal || h.FileName != name {
		return 0, fmt.Errorf("WAL %s: %w: it holds %s %q", st.Location(stored), artifact.ErrCorrupted, h.Kind, h.FileName)
	}
	n, err := io.Copy(dst, body)
	if err != nil {
		return n, fmt.Errorf("WAL %s: %w", st.Location(stored), err)
	}
	if seg, perr := ParseSegment(name); perr == nil && seg.Partial && n < SegmentSize {
		z, err := io.CopyN(dst, zeros{}, SegmentSize-n)
		if n += z; err != nil {
			return n, fmt.Errorf("WAL %s: %w", st.Location(stored), err)
		}
	}
	return n, nil
}

// Check finds one stored WAL file and reads its header only: it must be a
// WAL file of that name, wrapped by a key of kr. It is the cheap test a
// restore runs on every segment before it stages anything; Fetch, which
// authenticates every byte, comes later (still before anything stops).
func Check(ctx context.Context, st backupstore.Store, prefix string, tl uint32, name string, kr Keyring) error {
	stored := StoredName(prefix, tl, name)
	rc, _, err := st.Open(ctx, stored)
	if err != nil {
		return err
	}
	defer func() { _ = rc.Close() }()
	h, err := artifact.ReadHeader(backupstore.ContextReader(ctx, rc))
	if err != nil {
		return fmt.Errorf("WAL %s: %w", st.Location(stored), err)
	}
	if h.Kind != artifact.KindWal || h.FileName != name {
		return fmt.Errorf("WAL %s: %w: it holds %s %q", st.Location(stored), artifact.ErrCorrupted, h.Kind, h.FileName)
	}
	if _, ok := kr[h.KeyID]; !ok {
		return fmt.Errorf("WAL %s: %w %q: the task carries no archive key of that ID", st.Location(stored), keys.ErrUnknownKey, h.KeyID)
	}
	return nil
}

// ErrMissing is the error of WAL a restore needs that is not in the archive.
var ErrMissing = errors.New("WAL segment missing from the archive")

// zeros reads as an endless run of zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
