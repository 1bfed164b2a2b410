package api

import (
	"context"
	"time"

	"github.com/forlock/fleet/controlplane/internal/audit"
	"github.com/forlock/fleet/controlplane/internal/store"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// What each group of handlers needs of the durable state, declared here
// where it is used; *store.Store implements all of them, and a future store
// (etcd) implements them again without the handlers changing.

// CertStore reads the certificate a task last installed on a node.
type CertStore interface {
	InstalledCertificate(nodeID string) (*forlockv1.CertificateInfo, error)
}

// NodeStore is what NodeService needs: node facts for GetNode, removal, and
// the join tokens.
type NodeStore interface {
	CertStore
	Releases(nodeID string) ([]*forlockv1.Release, error)
	// The writes take the call's audit records, appended in the same
	// transaction (change).
	DeleteNode(id string, recs ...audit.Record) (store.Node, error)
	CreateToken(t store.JoinToken, recs ...audit.Record) error
	ListTokens() ([]store.JoinToken, error)
	RevokeToken(id string, now time.Time, recs ...audit.Record) (store.JoinToken, error)
}

// CatalogStore is what BackupService needs: the backup catalog.
type CatalogStore interface {
	ScanRestorePoints(before string, fn func(*forlockv1.RestorePoint) bool) error
	Artifact(id string) (*forlockv1.Artifact, error)
}

// AgentStore is what AgentService needs: enrollment (its rules run inside
// the store's transaction), renewals and quarantine.
type AgentStore interface {
	CheckJoinToken(id string, hash []byte) error
	Enroll(ctx context.Context, p store.EnrollParams, issue func(n store.Node) (store.Issued, error)) (store.Enrolled, error)
	RecordCertificate(r store.Renewal) (store.Node, error)
	Quarantine(id, reason string, now time.Time) (store.Node, error)
}

// DiskState reports the data disk.
type DiskState interface {
	Disk() store.DiskStatus
}
