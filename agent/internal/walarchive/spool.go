package walarchive

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/forlock/fleet/agent/internal/dbsource"
	"github.com/forlock/fleet/internal/artifact"
	"github.com/forlock/fleet/internal/keys"
)

// slotRe is a replication slot name PostgreSQL accepts and SQL can quote as is.
var slotRe = regexp.MustCompile(`^[a-z0-9_]{1,63}$`)

// encSuffix ends every stored WAL file's name.
const encSuffix = ".zst.enc"

// psql runs one SQL statement as the archiver's user and returns its output.
func (a *Archiver) psql(ctx context.Context, sql string) (string, error) {
	return dbsource.Postgres{Exec: a.cfg.Docker, Database: "postgres", OSUser: a.cfg.User}.Query(ctx, sql)
}

func (a *Archiver) sh(ctx context.Context, stdout io.Writer, cmd ...string) error {
	res, err := a.cfg.Docker.Exec(ctx, "postgres", a.cfg.User, cmd, nil, stdout)
	if err != nil {
		return fmt.Errorf("%s: %w", cmd[0], err)
	}
	return res.Err(cmd[0])
}

// prepare makes the spool, the slot if it is missing, and frees the slot
// of a receiver an earlier agent left running.
func (a *Archiver) prepare(ctx context.Context) error {
	if err := a.sh(ctx, io.Discard, "mkdir", "-p", "-m", "0700", a.cfg.SpoolDir); err != nil {
		return fmt.Errorf("make the WAL spool: %w", err)
	}
	if err := a.checkSegmentSize(ctx); err != nil {
		return err
	}
	q := fmt.Sprintf(`SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = '%s' AND active_pid IS NOT NULL`, a.cfg.Slot)
	if _, err := a.psql(ctx, q); err != nil {
		return fmt.Errorf("free the replication slot %s: %w", a.cfg.Slot, err)
	}
	q = fmt.Sprintf(`SELECT pg_create_physical_replication_slot('%[1]s', true) IS NOT NULL WHERE NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = '%[1]s')`, a.cfg.Slot)
	out, err := a.psql(ctx, q)
	if err != nil {
		return fmt.Errorf("create the replication slot %s: %w", a.cfg.Slot, err)
	}
	if out == "t" {
		// A new slot starts at the server's current position: WAL the spool
		// still holds from an older one cannot be continued. Ship what is
		// complete, then start the spool afresh (the jump is a gap).
		a.cfg.Logger.Warn("created the WAL archive's replication slot", "slot", a.cfg.Slot)
		if err := a.shipSpool(ctx, true); err != nil {
			return err
		}
		if err := a.sh(ctx, io.Discard, "find", a.cfg.SpoolDir, "-mindepth", "1", "-maxdepth", "1", "-type", "f", "-delete"); err != nil {
			return fmt.Errorf("empty the WAL spool: %w", err)
		}
	}
	return nil
}

func (a *Archiver) checkSegmentSize(ctx context.Context) error {
	out, err := a.psql(ctx, "SELECT setting FROM pg_settings WHERE name = 'wal_segment_size'")
	if err != nil {
		return fmt.Errorf("read wal_segment_size: %w", err)
	}
	if n, _ := strconv.Atoi(out); n != SegmentSize {
		return fmt.Errorf("the cluster's WAL segments are %s bytes: the archiver handles only 16 MiB segments", out)
	}
	return nil
}

// receive runs pg_receivewal until it ends or ctx does. Ending ctx cuts
// the exec's streams but not the process, so receive then stops it by its
// PID (SIGINT: it flushes and exits). A receiver left running by an agent
// that died is stopped by the next prepare, which ends the slot's walsender
// (pg_receivewal --no-loop exits when its connection goes).
func (a *Archiver) receive(ctx context.Context) error {
	script := `echo $$; exec pg_receivewal -D "$1" -S "$2" --synchronous --no-loop --no-password`
	var out bytes.Buffer
	res, err := a.cfg.Docker.Exec(ctx, "postgres", a.cfg.User, []string{"sh", "-c", script, "sh", a.cfg.SpoolDir, a.cfg.Slot}, nil, &out)
	if ctx.Err() != nil {
		if pid, perr := strconv.Atoi(strings.TrimSpace(out.String())); perr == nil && pid > 1 {
			kctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			if kerr := a.sh(kctx, io.Discard, "kill", "-INT", strconv.Itoa(pid)); kerr != nil {
				a.cfg.Logger.Warn("cannot stop pg_receivewal; the next start ends it", "pid", pid, "error", kerr)
			}
		}
		return ctx.Err()
	}
	if err != nil {
		return fmt.Errorf("pg_receivewal: %w", err)
	}
	if err := res.Err("pg_receivewal"); err != nil {
		return err
	}
	return errors.New("pg_receivewal ended")
}

// spoolFile is one file in the spool.
type spoolFile struct {
	name  string
	stamp string // size and modification time: changes when written
}

func (a *Archiver) list(ctx context.Context) ([]spoolFile, error) {
	var out bytes.Buffer
	if err := a.sh(ctx, &out, "find", a.cfg.SpoolDir, "-mindepth", "1", "-maxdepth", "1", "-type", "f", "-printf", `%f\t%s %T@\n`); err != nil {
		return nil, fmt.Errorf("list the WAL spool: %w", err)
	}
	var files []spoolFile
	for line := range strings.Lines(out.String()) {
		name, stamp, ok := strings.Cut(strings.TrimSuffix(line, "\n"), "\t")
		if ok {
			files = append(files, spoolFile{name: name, stamp: stamp})
		}
	}
	slices.SortFunc(files, func(x, y spoolFile) int { return strings.Compare(x.name, y.name) })
	return files, nil
}

// shipSpool ships every complete segment and history file in the spool,
// oldest first, removing each from the spool once it is stored, then the
// partial segment if it changed since it was last shipped and, unless
// final (pg_receivewal has ended), PartialInterval has passed since.
func (a *Archiver) shipSpool(ctx context.Context, final bool) error {
	files, err := a.list(ctx)
	if err != nil {
		return err
	}
	// Read once, after the listing (so the flush position covers at least
	// what the listed partial held) and only when something is shipped: an
	// idle node costs one exec per tick, the listing.
	position := sync.OnceValues(func() (LSN, bool) { return a.position(ctx) })
	var partial *spoolFile
	for i, f := range files {
		if isHistory(f.name) {
			position()
			tl, _ := strconv.ParseUint(f.name[:8], 16, 32)
			if _, _, err := a.ship(ctx, uint32(tl), f.name, -1); err != nil { //nolint:gosec // 8 hex digits
				return err
			}
			if err := a.sh(ctx, io.Discard, "rm", "-f", "--", a.cfg.SpoolDir+"/"+f.name); err != nil {
				return err
			}
			continue
		}
		seg, err := ParseSegment(f.name)
		if err != nil {
			continue // not ours (a temporary file of pg_receivewal, or junk)
		}
		if seg.Partial {
			partial = &files[i]
			continue
		}
		position()
		if err := a.shipSegment(ctx, seg); err != nil {
			return err
		}
	}
	if partial == nil {
		return nil
	}
	a.mu.Lock()
	same := a.st.PartialName == partial.name && a.st.PartialStamp == partial.stamp
	a.mu.Unlock()
	if same {
		return nil
	}
	t0 := a.cfg.Now()
	if t0.Sub(a.partialAt) < a.cfg.PartialInterval && !final {
		return nil // shipped recently: the next tick after PartialInterval
	}
	seg, _ := ParseSegment(partial.name)
	flushed, flushOK := position()
	size, used, err := a.ship(ctx, seg.Timeline, partial.name, filledIn(seg, flushed, flushOK))
	if err != nil {
		return err
	}
	a.partialAt = t0
	a.cfg.Logger.Debug("shipped the partial WAL segment", "segment", partial.name, "filled", used, "stored", size, "took", a.cfg.Now().Sub(t0).String())
	if used <= 0 {
		return nil // nothing written into it yet
	}
	end := seg.Start + LSN(uint64(used)) //nolint:gosec // used > 0, checked above
	return a.record(seg, end, size, func(st *state) { st.PartialName, st.PartialStamp = partial.name, partial.stamp })
}

func (a *Archiver) shipSegment(ctx context.Context, seg Segment) error {
	size, _, err := a.ship(ctx, seg.Timeline, seg.Name(), -1)
	if err != nil {
		return err
	}
	pseg := seg
	pseg.Partial = true
	var dropPartial bool
	if err := a.record(seg, seg.Start+SegmentSize, size, func(st *state) {
		dropPartial = st.PartialName == pseg.Name()
		if dropPartial {
			st.PartialName, st.PartialStamp = "", ""
		}
	}); err != nil {
		return err
	}
	if dropPartial {
		if err := a.cfg.Store.Delete(ctx, a.storeName(seg.Timeline, pseg.Name())); err != nil {
			a.cfg.Logger.Warn("cannot remove a shipped partial WAL segment; a restore prefers the complete one", "error", err)
		}
	}
	return a.sh(ctx, io.Discard, "rm", "-f", "--", a.cfg.SpoolDir+"/"+seg.Name())
}

// record adds a shipped segment to the state, saves it and signals the change.
func (a *Archiver) record(seg Segment, end LSN, size int64, also func(*state)) error {
	k, err := a.cfg.Keys.Current()
	if err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	at := a.archivedAt(end)
	if at.IsZero() {
		at = a.cfg.Now() // no sample yet: the first ship after a start
	}
	a.st.add(seg, end, uint64(max(size, 0)), k.KeyID(), at)
	also(&a.st)
	defer a.notify()
	return a.st.save(a.cfg.StateDir)
}

// storeName is where a spool file goes in the store.
func (a *Archiver) storeName(tl uint32, name string) string {
	return StoredName(a.cfg.Prefix, tl, name)
}

// written is the server's WAL write position (pg_current_wal_lsn) read
// after at: every transaction committed before at has its WAL before lsn.
type written struct {
	at  time.Time
	lsn LSN
}

// maxWritten bounds the positions kept: a minute of ticks at the default
// ship interval, more than the archive lags behind the server when it keeps
// up, and an end time older than that only understates the window.
const maxWritten = 64

// position reads, in one query, the server's WAL write position (kept as a
// sample for archivedAt) and how far pg_receivewal has flushed the slot's
// WAL (with --synchronous it reports each flush at once), or ok false when
// the receiver is not connected.
func (a *Archiver) position(ctx context.Context) (flushed LSN, ok bool) {
	at := a.cfg.Now()
	out, err := a.psql(ctx, fmt.Sprintf(`SELECT pg_current_wal_lsn(), (SELECT r.flush_lsn FROM pg_stat_replication r JOIN pg_replication_slots s ON s.active_pid = r.pid WHERE s.slot_name = '%s')`, a.cfg.Slot))
	if err != nil {
		return 0, false
	}
	cur, flush, _ := strings.Cut(out, "|")
	if l, err := ParseLSN(cur); err == nil {
		a.written = append(a.written, written{at: at, lsn: l})
		if len(a.written) > maxWritten {
			a.written = slices.Delete(a.written, 0, len(a.written)-maxWritten)
		}
	}
	l, err := ParseLSN(flush)
	return l, err == nil
}

// archivedAt returns the newest time at which the server had written no
// WAL past end: with the archive through end, every commit before it is
// archived. That, not when the file was shipped, is the range's end time, so
// a restore to any time up to the window's latest finds its commits (a
// shipped partial holds only what the receiver had flushed, which may lag
// the server). Zero when no sample shows it (just started, or behind by
// more than the samples span).
func (a *Archiver) archivedAt(end LSN) time.Time {
	for i := len(a.written) - 1; i >= 0; i-- {
		if a.written[i].lsn <= end {
			return a.written[i].at
		}
	}
	return time.Time{}
}

// filledIn returns how many bytes of the partial segment seg the receiver
// has flushed, given its flush position, or -1 when the position is in
// another segment or unknown (then the whole file is read). The rest of a
// partial segment is the zeros pg_receivewal filled it with, so shipping only
// this prefix costs what was written, not 16 MiB, each time the partial
// changes.
func filledIn(seg Segment, flushed LSN, ok bool) int64 {
	if !ok || flushed < seg.Start || flushed > seg.Start+SegmentSize {
		return -1 // another segment: the file may hold more than the server says of this one
	}
	return int64(flushed - seg.Start) //nolint:gosec // at most SegmentSize
}

// ship streams one spool file through the artifact pipeline into the
// store: its first limit bytes, or all of it when limit < 0. It returns the
// stored size and, for a segment, the bytes up to the last non-zero one (how
// far it is filled).
func (a *Archiver) ship(ctx context.Context, tl uint32, name string, limit int64) (size int64, used int64, err error) {
	k, err := a.cfg.Keys.Current()
	if err != nil {
		return 0, 0, err
	}
	dk, err := keys.NewDataKey()
	if err != nil {
		return 0, 0, err
	}
	wrapped, err := k.Wrap(ctx, dk)
	if err != nil {
		return 0, 0, err
	}
	hdr := artifact.Header{Kind: artifact.KindWal, Node: a.cfg.Node, Created: a.cfg.Now(), KeyID: k.KeyID(), WrappedKey: wrapped, FileName: name}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pr, pw := io.Pipe()
	fill := &fillWriter{}
	srcDone := make(chan error, 1)
	go func() {
		aw, err := artifact.NewWriter(pw, hdr, dk)
		if err == nil {
			read := []string{"cat", "--", a.cfg.SpoolDir + "/" + name}
			if limit >= 0 {
				read = []string{"head", "-c", strconv.FormatInt(limit, 10), "--", a.cfg.SpoolDir + "/" + name}
			}
			err = a.sh(sctx, io.MultiWriter(aw, fill), read...)
			if cerr := aw.Close(); err == nil {
				err = cerr
			}
		}
		pw.CloseWithError(err)
		srcDone <- err
	}()
	dst := a.storeName(tl, name)
	n, putErr := a.cfg.Store.Put(sctx, dst, pr)
	if putErr != nil {
		cancel()
		_ = pr.CloseWithError(putErr)
	}
	srcErr := <-srcDone
	switch {
	case putErr != nil:
		return 0, 0, fmt.Errorf("ship WAL %s to %s: %w", name, a.cfg.Store.Location(dst), putErr)
	case srcErr != nil:
		return 0, 0, fmt.Errorf("read WAL %s from the spool: %w", name, srcErr)
	}
	return n, fill.used, nil
}

// fillWriter finds how far a segment is filled: the offset after its last
// non-zero byte (pg_receivewal pre-fills a new segment with zeros).
type fillWriter struct {
	off, used int64
}

func (f *fillWriter) Write(p []byte) (int, error) {
	for i := len(p) - 1; i >= 0; i-- {
		if p[i] != 0 {
			f.used = f.off + int64(i) + 1
			break
		}
	}
	f.off += int64(len(p))
	return len(p), nil
}
