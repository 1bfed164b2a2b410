package jobs

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/forlock/fleet/controlplane/internal/registry"
	"github.com/forlock/fleet/controlplane/internal/store"
	"github.com/forlock/fleet/internal/labels"
	"github.com/forlock/fleet/internal/pglsn"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// Point-in-time restore is resolved at submit, before any task exists: a
// physical base backup of the node plus the cataloged WAL ranges that
// continue it without a gap to the target. What cannot be reached is
// refused with the gap or the window named, so nothing on the node stops
// for a restore that could not finish.

// ErrWALMissing is a point-in-time restore whose WAL is not in the catalog
// (a gap, or no base backup to start from).
var ErrWALMissing = errors.New("point-in-time restore impossible")

func walMissing(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrWALMissing, fmt.Sprintf(format, args...))
}

// timeText prints a time for messages.
func timeText(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// base is a physical base backup with its parsed WAL start.
type base = store.WalBase

// walBases returns a node's WAL bases, newest end first.
func (e *Engine) walBases(nodeID string) ([]base, error) {
	all, err := e.store.WalBases()
	return all[nodeID], err
}

// chain follows the ranges of b's timeline from b's WAL start while they
// are contiguous, and stops at the first range done says is enough. It
// returns the ranges and, when it ran out first, the position and time
// the WAL stops at and the start of the next range ("" if none).
func chain(b base, ranges []*forlockv1.WalRange, done func(*forlockv1.WalRange) bool) (got []*forlockv1.WalRange, reached bool, gapAt string, gapTime time.Time, next string) {
	pos := b.Start
	gapAt, gapTime = b.Start.String(), b.End
	for _, r := range ranges { // ordered by timeline and start
		if r.GetTimeline() != b.Artifact.GetTimeline() {
			continue
		}
		s, _ := pglsn.Parse(r.GetStartLsn())
		en, _ := pglsn.Parse(r.GetEndLsn())
		if en <= pos && len(got) > 0 || en < pos {
			continue // wholly before what is needed
		}
		if s > pos {
			return got, false, gapAt, gapTime, r.GetStartLsn()
		}
		got = append(got, r)
		pos, gapAt, gapTime = en, r.GetEndLsn(), r.GetEndTime().AsTime()
		if done(r) {
			return got, true, "", time.Time{}, ""
		}
	}
	return got, false, gapAt, gapTime, ""
}

func gapText(at string, when time.Time, next string) string {
	if next == "" {
		return fmt.Sprintf("WAL missing after %s (archived up to %s)", at, timeText(when))
	}
	return fmt.Sprintf("WAL missing between %s and %s (after %s)", at, next, timeText(when))
}

// resolvePITR fills a point-in-time restore: its base artifact and its
// WAL ranges.
func (e *Engine) resolvePITR(r *forlockv1.RestoreSpec, target registry.Target, scope labels.Selector, now time.Time) error {
	if r.GetRestorePointId() != "" || len(r.GetArtifactIds()) > 0 || r.GetLatest() {
		return invalid("restore: give to_time or to_latest, or a restore point, artifact IDs or latest, not both")
	}
	if r.GetToTime() != nil && r.GetToLatest() {
		return invalid("restore: give to_time or to_latest, not both")
	}
	for _, k := range r.GetOnly() {
		if k != forlockv1.ArtifactKind_ARTIFACT_KIND_POSTGRES {
			return invalid("a point-in-time restore restores PostgreSQL only")
		}
	}
	source, err := e.sourceNode(r, target, scope)
	if err != nil {
		return err
	}
	bases, err := e.walBases(source.ID)
	if err != nil {
		return err
	}
	ranges, err := e.store.WalRanges(source.ID)
	if err != nil {
		return err
	}
	if len(bases) == 0 {
		return walMissing("node %s has no physical base backup with its WAL position: take one (forlockctl backup --node %s --pg-format physical) and restore to a time after it", source.Name, source.Name)
	}
	var b base
	var wal []*forlockv1.WalRange
	if r.GetToLatest() {
		last := newestRange(ranges)
		if last == nil {
			return walMissing("node %s has no archived WAL", source.Name)
		}
		var firstGap error
		for _, cand := range bases {
			got, ok, at, when, next := chain(cand, ranges, func(x *forlockv1.WalRange) bool { return x == last })
			if ok {
				b, wal = cand, got
				break
			}
			if firstGap == nil {
				firstGap = walMissing("%s: restore to a time before it or after the next base backup", gapText(at, when, next))
			}
		}
		if wal == nil {
			return firstGap
		}
	} else {
		t := r.GetToTime().AsTime()
		if t.After(now) {
			return invalid("%s is in the future (now %s)", timeText(t), timeText(now))
		}
		i := slices.IndexFunc(bases, func(x base) bool { return !x.End.After(t) })
		if i < 0 {
			return invalid("%s is before every base backup of node %s: the earliest reachable time is %s", timeText(t), source.Name, timeText(bases[len(bases)-1].End))
		}
		b = bases[i]
		got, ok, at, when, next := chain(b, ranges, func(x *forlockv1.WalRange) bool { return !x.GetEndTime().AsTime().Before(t) })
		if !ok {
			return walMissing("%s: restore to a time before it or after the next base backup", gapText(at, when, next))
		}
		wal = got
	}
	r.Artifacts = []*forlockv1.Artifact{b.Artifact}
	r.Wal = nil
	for _, w := range wal {
		r.Wal = append(r.Wal, proto.CloneOf(w))
	}
	return nil
}

// newestRange is the range of the newest timeline that ends last.
func newestRange(ranges []*forlockv1.WalRange) *forlockv1.WalRange {
	var out *forlockv1.WalRange
	for _, r := range ranges {
		if out == nil || cmp.Or(cmp.Compare(r.GetTimeline(), out.GetTimeline()), lsnCompare(r.GetEndLsn(), out.GetEndLsn())) > 0 {
			out = r
		}
	}
	return out
}

func lsnCompare(a, b string) int {
	x, _ := pglsn.Parse(a)
	y, _ := pglsn.Parse(b)
	return cmp.Compare(x, y)
}

// RecoveryWindows computes what point-in-time restore can reach on each
// node from the catalog (one scan of it for all); nodes without WAL have
// none.
func (e *Engine) RecoveryWindows(nodes []registry.Target) ([]*forlockv1.RecoveryWindow, error) {
	all, err := e.store.WalBases()
	if err != nil {
		return nil, err
	}
	var out []*forlockv1.RecoveryWindow
	for _, n := range nodes {
		ranges, err := e.store.WalRanges(n.ID)
		if err != nil {
			return nil, err
		}
		if len(ranges) > 0 {
			out = append(out, recoveryWindow(n, ranges, all[n.ID]))
		}
	}
	return out, nil
}

// recoveryWindow is one node's window from its WAL ranges and bases.
func recoveryWindow(node registry.Target, ranges []*forlockv1.WalRange, bases []base) *forlockv1.RecoveryWindow {
	last := newestRange(ranges)
	w := &forlockv1.RecoveryWindow{NodeId: node.ID, NodeName: node.Name, Latest: last.GetEndTime(), Timeline: last.GetTimeline()}
	oldest := pglsn.LSN(0)
	for i := len(bases) - 1; i >= 0; i-- { // oldest first
		if _, ok, _, _, _ := chain(bases[i], ranges, func(x *forlockv1.WalRange) bool { return x == last }); ok {
			w.Earliest = timestamppb.New(bases[i].End)
			break
		}
	}
	if len(bases) > 0 {
		oldest = bases[len(bases)-1].Start
	}
	for i, r := range ranges {
		w.WalBytes += r.GetSizeBytes()
		if i+1 < len(ranges) && ranges[i+1].GetTimeline() == r.GetTimeline() {
			end, _ := pglsn.Parse(r.GetEndLsn())
			next, _ := pglsn.Parse(ranges[i+1].GetStartLsn())
			if next > end && end >= oldest {
				w.Gaps = append(w.Gaps, &forlockv1.WalGap{Timeline: r.GetTimeline(), AfterLsn: r.GetEndLsn(), BeforeLsn: ranges[i+1].GetStartLsn(), AfterTime: r.GetEndTime()})
			}
		}
	}
	return w
}

// archiveTaskKeys unwraps the archive keys the WAL ranges of a restore
// name: one TaskKey "archive" per key. They are never stored.
func (e *Engine) archiveTaskKeys(ctx context.Context, wal []*forlockv1.WalRange) ([]*forlockv1.TaskKey, error) {
	var out []*forlockv1.TaskKey
	seen := map[string]bool{}
	stored := map[string][]store.ArchiveKey{} // by node: one read each
	for _, r := range wal {
		if _, ok := stored[r.GetNodeId()]; !ok {
			keys, err := e.store.ArchiveKeys(r.GetNodeId())
			if err != nil {
				return nil, err
			}
			stored[r.GetNodeId()] = keys
		}
		stored := stored[r.GetNodeId()]
		for _, id := range r.GetKeyIds() {
			if seen[id] {
				continue
			}
			seen[id] = true
			i := slices.IndexFunc(stored, func(k store.ArchiveKey) bool { return k.KeyID == id })
			if i < 0 {
				return nil, fmt.Errorf("archive key %s of node %s is not in the catalog", id, r.GetNodeId())
			}
			plain, err := e.kek.Unwrap(ctx, stored[i].KEKID, stored[i].Wrapped)
			if err != nil {
				return nil, fmt.Errorf("unwrap archive key %s: %w", id, err)
			}
			out = append(out, &forlockv1.TaskKey{Name: "archive", KeyId: id, PlainKey: plain})
		}
	}
	return out, nil
}

// validWalPosition reports whether a physical artifact's WAL position is
// complete and well-formed: an agent's report is checked before it makes a
// base for point-in-time restore.
func validWalPosition(a *forlockv1.Artifact) bool {
	if a.GetPostgresFormat() != forlockv1.PostgresFormat_POSTGRES_FORMAT_PHYSICAL || a.GetTimeline() == 0 || a.GetBackupEndTime() == nil {
		return false
	}
	s, err1 := pglsn.Parse(a.GetWalStartLsn())
	en, err2 := pglsn.Parse(a.GetWalEndLsn())
	return err1 == nil && err2 == nil && s <= en
}

// checkWalDelete checks the WAL a delete_backup job deletes: ranges of the
// target node with valid positions (retention makes them; an operator may
// too).
func (e *Engine) checkWalDelete(wal []*forlockv1.WalRange, target registry.Target) error {
	if len(wal) > 64 {
		return invalid("delete_backup: at most 64 WAL ranges")
	}
	for _, r := range wal {
		if r.GetNodeId() != target.ID {
			return invalid("WAL of node %s is deleted by that node (target %s)", r.GetNodeId(), target.Name)
		}
		if _, err := pglsn.Parse(r.GetStartLsn()); err != nil {
			return invalid("WAL range start: %v", err)
		}
		if _, err := pglsn.Parse(r.GetEndLsn()); err != nil {
			return invalid("WAL range end: %v", err)
		}
		if r.GetTimeline() == 0 {
			return invalid("WAL range without a timeline")
		}
		if err := validDestination(r.GetDestination()); err != nil {
			return err
		}
	}
	return nil
}
