// Package newest keeps each node's newest backups from the backup catalog,
// read incrementally: restore point IDs sort by time, so an update reads
// only the restore points made since the previous one, and the whole
// catalog only every FullScanEvery (so a deleted backup shows within that
// time). The metrics collector and the alert evaluator each keep one, so a
// scrape or an evaluation every few seconds at 10,000 nodes does not read
// the whole catalog.
package newest

import (
	"time"

	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// FullScanEvery is how often the backup catalog is read whole.
const FullScanEvery = 10 * time.Minute

// Catalog is the part of the store read.
type Catalog interface {
	ScanRestorePoints(before string, fn func(*forlockv1.RestorePoint) bool) error
}

// Node is one node's newest backups.
type Node struct {
	// Last is when the newest available artifact of each kind was made.
	Last map[forlockv1.ArtifactKind]time.Time
	// LatestAt and LatestBytes are the newest restore point with an
	// available artifact: when it was made and its available bytes.
	LatestAt    time.Time
	LatestBytes uint64
}

// Backups is each node's newest backups, kept between updates. Not safe
// for concurrent use.
type Backups struct {
	newest   string    // ID of the newest restore point read
	fullScan time.Time // when the catalog was last read whole
	nodes    map[string]*Node
}

// Nodes returns the nodes read so far, by node ID; read only.
func (b *Backups) Nodes() map[string]*Node { return b.nodes }

// Update reads the restore points made since the previous update, or the
// whole catalog when FullScanEvery has passed.
func (b *Backups) Update(cat Catalog, now time.Time) error {
	full := b.nodes == nil || now.Sub(b.fullScan) >= FullScanEvery
	nodes, stop := b.nodes, b.newest
	if full {
		nodes, stop = map[string]*Node{}, ""
	}
	newest := ""
	err := cat.ScanRestorePoints("", func(rp *forlockv1.RestorePoint) bool {
		if stop != "" && rp.GetId() <= stop {
			return false // IDs sort by time: the rest was read before
		}
		if newest == "" {
			newest = rp.GetId()
		}
		add(nodes, rp)
		return true
	})
	if err != nil {
		return err
	}
	b.nodes = nodes
	if newest != "" {
		b.newest = newest
	}
	if full {
		b.fullScan = now
	}
	return nil
}

func add(nodes map[string]*Node, rp *forlockv1.RestorePoint) {
	n := nodes[rp.GetNodeId()]
	if n == nil {
		n = &Node{Last: map[forlockv1.ArtifactKind]time.Time{}}
		nodes[rp.GetNodeId()] = n
	}
	var bytes uint64
	available := false
	for _, a := range rp.GetArtifacts() {
		if a.GetState() == forlockv1.ArtifactState_ARTIFACT_STATE_DELETED {
			continue
		}
		available = true
		bytes += a.GetSizeBytes()
		if t := a.GetCreatedAt().AsTime(); t.After(n.Last[a.GetKind()]) {
			n.Last[a.GetKind()] = t
		}
	}
	if t := rp.GetCreatedAt().AsTime(); available && t.After(n.LatestAt) {
		n.LatestAt, n.LatestBytes = t, bytes
	}
}
