package backup

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"regexp"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/forlock/fleet/agent/internal/dbsource"
	"github.com/forlock/fleet/agent/internal/dockerrt"
	"github.com/forlock/fleet/agent/internal/walarchive"
	"github.com/forlock/fleet/internal/backupstore"
	"github.com/forlock/fleet/internal/keys"
	"github.com/forlock/fleet/internal/pglsn"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// A point-in-time restore (RestoreSpec.to_time or to_latest) is a physical
// restore (restore_physical.go) with the archived WAL replayed on top:
//
//  1. before anything is staged or stopped, every WAL segment from the base
//     backup's start through the end of the last range the control plane
//     chose is looked up in the archive (the last may be only its
//     .partial) and its header read: a missing file, one of another name
//     or one wrapped by a key the task does not carry refuses the task,
//     naming the segment;
//  2. after the base backup is staged, the segments are decrypted, every
//     byte authenticated, into <staged>/forlock-wal (the partial under its
//     full segment name, padded to the segment size by Fetch); a segment
//     that does not decrypt, or is not a whole segment, refuses the task,
//     still with nothing stopped; recovery.signal is written and the
//     recovery settings are appended to the staged postgresql.auto.conf;
//  3. the swap and start are the physical restore's; then the server must
//     leave recovery (promoted at the target, or at the end of the WAL)
//     within RecoveryTimeout, or the previous data is put back, with
//     PostgreSQL's own reason in the error; after success the recovery
//     settings are reset and the WAL directory removed.

// walStageDir is the directory of the WAL to replay, inside the data
// directory.
const walStageDir = "forlock-wal"

// DefaultRecoveryTimeout bounds the replay of a point-in-time restore.
const DefaultRecoveryTimeout = 30 * time.Minute

// pitrSettings are the settings a point-in-time restore adds for its
// recovery, reset once it has ended.
var pitrSettings = []string{"restore_command", "recovery_target_time", "recovery_target_inclusive", "recovery_target_action", "recovery_target_timeline"}

// safeDataDir is a data directory that can be quoted in restore_command
// without escaping.
var safeDataDir = regexp.MustCompile(`^/[A-Za-z0-9/_.-]+$`)

// pitrPlan is the WAL of a point-in-time restore.
type pitrPlan struct {
	store  backupstore.Store
	prefix string // "wal/<node-id>/"
	tl     uint32
	keys   walarchive.Keyring
	files  []walFile
	target *time.Time // nil: to the end of the WAL
	close  func()
}

// walFile is one segment to replay and the stored file that holds it.
type walFile struct {
	seg    walarchive.Segment // the full segment
	stored walarchive.Segment // seg, or its .partial form
}

// isPITR reports whether the restore replays WAL to a point in time.
func isPITR(r *forlockv1.RestoreSpec) bool { return r.GetToTime() != nil || r.GetToLatest() }

// planPITR checks a point-in-time restore's spec against its base backup,
// opens the WAL archive and verifies every segment it needs (step 1).
// Nothing is changed.
func (c *core) planPITR(ctx context.Context, r *forlockv1.RestoreSpec, base *item, taskKeys []*forlockv1.TaskKey, p *progress) (*pitrPlan, error) {
	if base == nil || !base.physical || len(r.GetArtifacts()) != 1 {
		return nil, errors.New("a point-in-time restore needs exactly one physical PostgreSQL base backup")
	}
	start, err := pglsn.Parse(base.art.GetWalStartLsn())
	if err != nil || base.art.GetTimeline() == 0 {
		return nil, fmt.Errorf("base backup %s carries no WAL position (start %q, timeline %d): take a new one", base.art.GetId(), base.art.GetWalStartLsn(), base.art.GetTimeline())
	}
	ranges := r.GetWal()
	if len(ranges) == 0 {
		return nil, errors.New("the task names no WAL to replay")
	}
	first := ranges[0]
	var end pglsn.LSN
	for i, w := range ranges {
		if w.GetNodeId() == "" || w.GetNodeId() != first.GetNodeId() || strings.ContainsAny(w.GetNodeId(), "/\\.") {
			return nil, fmt.Errorf("WAL range of node %q: want one node's WAL", w.GetNodeId())
		}
		if w.GetTimeline() != base.art.GetTimeline() {
			return nil, fmt.Errorf("WAL range of timeline %d: the base backup is on timeline %d", w.GetTimeline(), base.art.GetTimeline())
		}
		if !proto.Equal(w.GetDestination(), first.GetDestination()) {
			return nil, errors.New("WAL ranges in two destinations: want one archive")
		}
		ws, err1 := pglsn.Parse(w.GetStartLsn())
		we, err2 := pglsn.Parse(w.GetEndLsn())
		if err := errors.Join(err1, err2); err != nil {
			return nil, fmt.Errorf("WAL range: %w", err)
		}
		if we < ws || i > 0 && ws > end {
			return nil, fmt.Errorf("WAL ranges not in order or not contiguous at %s: want the control plane's ranges as it sent them", ws)
		}
		end = max(end, we)
	}
	if end <= start {
		return nil, fmt.Errorf("the WAL ends at %s, before the base backup's start %s", end, start)
	}
	if n := (uint64(end) - uint64(start)) / walarchive.SegmentSize; n > 1<<20 {
		return nil, fmt.Errorf("%d WAL segments to replay: too many", n)
	}
	pl := &pitrPlan{prefix: "wal/" + first.GetNodeId() + "/", tl: base.art.GetTimeline(), keys: walarchive.Keyring{}, close: func() {}}
	if t := r.GetToTime(); t != nil {
		at := t.AsTime()
		pl.target = &at
	}
	for _, k := range taskKeys {
		if k.GetName() != "archive" {
			continue
		}
		f, err := keys.NewNamed(k.GetKeyId(), k.GetPlainKey())
		if err != nil {
			return nil, fmt.Errorf("archive key %s: %w", k.GetKeyId(), err)
		}
		pl.keys[k.GetKeyId()] = f
	}
	if len(pl.keys) == 0 {
		return nil, errors.New("the task carries no archive key to decrypt the WAL with")
	}
	if err := c.openWAL(ctx, pl, first.GetDestination()); err != nil {
		return nil, err
	}
	last := walarchive.SegmentAt(pl.tl, walarchive.LSN(end-1)).Start
	for s := walarchive.SegmentAt(pl.tl, walarchive.LSN(start)); s.Start <= last; s.Start += walarchive.SegmentSize {
		pl.files = append(pl.files, walFile{seg: s, stored: s})
	}
	var done counter
	p.step(fmt.Sprintf("find %d WAL segments", len(pl.files)), 5, done.load)
	for i := range pl.files {
		f := &pl.files[i]
		err := walarchive.Check(ctx, pl.store, pl.prefix, pl.tl, f.seg.Name(), pl.keys)
		if err != nil && missing(err) && i == len(pl.files)-1 {
			f.stored.Partial = true
			err = walarchive.Check(ctx, pl.store, pl.prefix, pl.tl, f.stored.Name(), pl.keys)
		}
		if missing(err) {
			err = fmt.Errorf("%w: %w", walarchive.ErrMissing, err)
		}
		if err != nil {
			pl.close()
			return nil, fmt.Errorf("WAL segment %s (timeline %d, needed from %s to %s): %w", f.seg.Name(), pl.tl, start, end, err)
		}
		done.add(walarchive.SegmentSize)
	}
	if r.GetToLatest() && !pl.files[len(pl.files)-1].stored.Partial {
		pl.files = append(pl.files, pl.newer(ctx, pl.files[len(pl.files)-1].seg)...)
	}
	c.cfg.Logger.Info("restore: found the WAL", "segments", len(pl.files), "from", start.String(), "to", end.String())
	return pl, nil
}

// newer finds the segments the archive holds after seg that the control
// plane did not know of: the WAL shipped after the archiving agent's last
// report, which a restore to the latest position must not lose when that
// agent is gone (its node lost). It follows them while they continue,
// ending at the first partial one; what is not there, or does not check,
// ends the search (PostgreSQL's replay verifies the WAL's continuity).
func (pl *pitrPlan) newer(ctx context.Context, seg walarchive.Segment) []walFile {
	var out []walFile
	for range maxNewer {
		seg.Start += walarchive.SegmentSize
		f := walFile{seg: seg, stored: seg}
		if walarchive.Check(ctx, pl.store, pl.prefix, pl.tl, seg.Name(), pl.keys) != nil {
			f.stored.Partial = true
			if walarchive.Check(ctx, pl.store, pl.prefix, pl.tl, f.stored.Name(), pl.keys) != nil {
				return out
			}
		}
		out = append(out, f)
		if f.stored.Partial {
			return out
		}
	}
	return out
}

// maxNewer bounds the segments newer looks for: what was shipped in the
// last report interval, with room to spare.
const maxNewer = 64

func missing(err error) bool {
	return errors.Is(err, backupstore.ErrNotFound) || errors.Is(err, fs.ErrNotExist)
}

// openWAL opens the archive the WAL ranges are in, as a backup's
// destination is opened (an allowed directory, or the agent's S3 server);
// the WAL's own prefix is the plan's.
func (c *core) openWAL(ctx context.Context, pl *pitrPlan, d *forlockv1.BackupDestination) error {
	t, err := c.destination(ctx, d, "")
	if err != nil {
		return fmt.Errorf("WAL archive: %w", err)
	}
	pl.store, pl.close = t.store, t.close
	return nil
}

// recoveryConf is what is appended to the staged postgresql.auto.conf.
func (pl *pitrPlan) recoveryConf(dataDir string) string {
	var b strings.Builder
	b.WriteString("\n# forlock point-in-time restore: reset once recovery has ended\n")
	fmt.Fprintf(&b, "restore_command = 'cp \"%s/%s/%%f\" \"%%p\"'\n", dataDir, walStageDir)
	if pl.target != nil {
		fmt.Fprintf(&b, "recovery_target_time = '%s'\n", pl.target.UTC().Format("2006-01-02 15:04:05.000000+00"))
		b.WriteString("recovery_target_inclusive = on\n")
	}
	b.WriteString("recovery_target_action = 'promote'\n")
	fmt.Fprintf(&b, "recovery_target_timeline = '%d'\n", pl.tl)
	return b.String()
}

// stageWAL is step 2: the segments and the recovery settings go into the
// staged data directory; the server still runs on the live one.
func (c *core) stageWAL(ctx context.Context, pl *pitrPlan, dataDir string, p *progress) error {
	if !safeDataDir.MatchString(dataDir) {
		return fmt.Errorf("data directory %q: a point-in-time restore needs one of letters, digits and / _ . -", dataDir)
	}
	// The files must belong to the staged data directory's owner (the
	// helpers run as that user, and so does PostgreSQL).
	var owner bytes.Buffer
	res, err := c.cfg.Docker.Exec(ctx, "postgres", "", []string{"stat", "-c", "%u %g", dataDir + "/" + incomingDir + "/PG_VERSION"}, nil, &owner)
	if err == nil {
		err = res.Err("stat the staged PG_VERSION")
	}
	var uid, gid int
	if err == nil {
		_, err = fmt.Sscanf(owner.String(), "%d %d", &uid, &gid)
	}
	if err != nil {
		return fmt.Errorf("the owner of the staged data directory: %w", err)
	}
	var n counter
	p.step(fmt.Sprintf("stage %d WAL segments", len(pl.files)), 40, n.load)
	r, w := io.Pipe()
	go func() { w.CloseWithError(pl.writeTar(ctx, w, uid, gid, &n)) }()
	err = c.cfg.Docker.CopyTo(ctx, "postgres", dataDir, r)
	_ = r.CloseWithError(errCopyEnded)
	if err != nil {
		return fmt.Errorf("stage the WAL: %w", err)
	}
	script := `set -eu
cd "$1/` + incomingDir + `"
own=$(stat -c %u:%g PG_VERSION)
cat >> postgresql.auto.conf <<'FORLOCK_EOF'
` + pl.recoveryConf(dataDir) + `FORLOCK_EOF
: > recovery.signal
chmod 600 recovery.signal postgresql.auto.conf
chown "$own" postgresql.auto.conf recovery.signal
`
	return c.helper(ctx, "write the recovery settings", script, dataDir)
}

// writeTar writes the segments as a tar of <incoming>/forlock-wal/.
func (pl *pitrPlan) writeTar(ctx context.Context, w io.Writer, uid, gid int, n *counter) error {
	tw := tar.NewWriter(w)
	dir := incomingDir + "/" + walStageDir + "/"
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: dir, Mode: 0o700, Uid: uid, Gid: gid, ModTime: time.Now()}); err != nil {
		return err
	}
	for _, f := range pl.files {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: dir + f.seg.Name(), Mode: 0o600, Uid: uid, Gid: gid, Size: walarchive.SegmentSize, ModTime: time.Now()}); err != nil {
			return err
		}
		// Fetch gives a partial back whole; a complete segment of another
		// size is damaged, not "the end of the WAL" (a longer one the tar
		// writer refuses as it is written).
		got, err := walarchive.Fetch(ctx, pl.store, pl.prefix, pl.tl, f.stored.Name(), pl.keys, tw)
		if err != nil {
			return fmt.Errorf("WAL segment %s: %w", f.seg.Name(), err)
		}
		if got != walarchive.SegmentSize {
			return fmt.Errorf("WAL segment %s: %d bytes, not a whole segment: the archive is damaged", f.seg.Name(), got)
		}
		n.add(walarchive.SegmentSize)
	}
	return tw.Close()
}

// waitRecovery is step 3 once the server answers: it waits until recovery
// has ended, then resets the recovery settings and removes the WAL.
func (c *core) waitRecovery(ctx context.Context, dataDir string, p *progress) error {
	p.step("replay WAL", 80, nil)
	pg := dbsource.Postgres{Exec: c.cfg.Docker}
	wctx, cancel := context.WithTimeout(ctx, c.cfg.RecoveryTimeout)
	defer cancel()
	for {
		st, err := c.cfg.Docker.State(wctx, "postgres")
		if err == nil && !st.Running() || err == nil && st.Status == "restarting" {
			return fmt.Errorf("postgres stopped during recovery (%s)", st.Status)
		}
		v, err := pg.Query(wctx, "SELECT pg_is_in_recovery()")
		if err == nil && v == "f" {
			break
		}
		select {
		case <-wctx.Done():
			return fmt.Errorf("recovery has not ended after %s", c.cfg.RecoveryTimeout)
		case <-time.After(500 * time.Millisecond):
		}
	}
	c.cfg.Logger.Info("restore: recovery ended, postgres promoted")
	for _, s := range pitrSettings {
		if _, err := pg.Query(ctx, "ALTER SYSTEM RESET "+s); err != nil {
			return fmt.Errorf("reset %s after recovery: %w", s, err)
		}
	}
	if _, err := pg.Query(ctx, "SELECT pg_reload_conf()"); err != nil {
		return fmt.Errorf("reload the configuration after recovery: %w", err)
	}
	cctx, ccancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer ccancel()
	if err := c.helper(cctx, "remove the replayed WAL", `rm -rf -- "$1/`+walStageDir+`"`, dataDir); err != nil {
		c.cfg.Logger.Warn("restore: the replayed WAL is left; remove it by hand", "path", dataDir+"/"+walStageDir, "error", err.Error())
	}
	return nil
}

// logReader is the part of dockerrt.Runtime that reads a container's log.
type logReader interface {
	Logs(ctx context.Context, service string, o dockerrt.LogOptions, fn func(dockerrt.LogLine) error) error
}

// postgresReason returns PostgreSQL's FATAL and PANIC lines since t, for
// the error of a failed recovery ("" if none or unreadable).
func (c *core) postgresReason(ctx context.Context, since time.Time) string {
	lr, ok := c.cfg.Docker.(logReader)
	if !ok {
		return ""
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	var lines []string
	_ = lr.Logs(ctx, "postgres", dockerrt.LogOptions{Since: since}, func(l dockerrt.LogLine) error {
		for _, lvl := range []string{"FATAL:", "PANIC:"} {
			if i := strings.Index(l.Text, lvl); i >= 0 {
				lines = append(lines, strings.TrimSpace(l.Text[i:]))
				break
			}
		}
		return nil
	})
	if len(lines) > 3 {
		lines = lines[len(lines)-3:]
	}
	return strings.Join(lines, "; ")
}
