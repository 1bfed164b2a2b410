// Package store is the control plane's durable state in bbolt: the node
// registry, the join tokens (hashed), the admin credential (hashed), jobs
// with their tasks and events, the backup catalog and node facts.
//
// Bucket tree (schema version 2):
//
//	meta/
//	  schema_version    -> "2"
//	  admin_token_hash  -> SHA-256 of the admin token
//	nodes/
//	  <node-id>         -> JSON Node
//	node_names/
//	  <name>            -> <node-id>
//	join_tokens/
//	  <token-id>        -> JSON JoinToken (holds the SHA-256 of the secret, never the secret)
//	token_uses/: which keys enrolled with each token, see enroll.go
//	jobs/, job_tasks/, jobs_active/, job_events/, job_keys/, late_tasks/: see jobs.go
//	restore_points/, artifacts/: see catalog.go
//	releases/, node_certs/: see facts.go
//	identities/, identity_hashes/: see access.go
//	audit/, audit_meta/: the audit log, see package audit
//	archive_keys/: each node's WAL archive keys, wrapped, see archivekeys.go
//	wal_ranges/: the WAL catalog, contiguous ranges per node, see wal.go
//	wal_heals/: when a gap in each node's WAL was last healed, see wal.go
//	outbox/: alert notifications not yet delivered, per receiver, see outbox.go
//	alerts/, alert_transitions/: the built-in alerting's firing set and the
//	  notifications not yet taken by the outbox, see alerts.go
//
// Every write is one bbolt transaction, so each change is atomic and durable
// when the method returns. Heartbeats are not stored here: only state changes.
// A write is refused with ErrDiskFull while the data disk is full (disk.go);
// reads are counted, so tests can prove a path reads nothing.
//
// Open migrates an older layout in its first transaction (migrate.go):
// schema 1 stored each job whole, tasks included, as one protobuf
// forlockv1.Job; schema 2 stores a job record and one record per task.
// A database newer than this code is refused (ErrSchemaTooNew).
package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/forlock/fleet/controlplane/internal/audit"
	"github.com/forlock/fleet/controlplane/internal/enroll"
)

// SchemaVersion is the layout version this code reads and writes.
const SchemaVersion = 2

var (
	bucketMeta      = []byte("meta")
	bucketNodes     = []byte("nodes")
	bucketNodeNames = []byte("node_names")
	bucketTokens    = []byte("join_tokens")

	keySchemaVersion = []byte("schema_version")
	keyAdminHash     = []byte("admin_token_hash")
)

// Sentinel errors; the API layer maps them to status codes.
var (
	ErrNotFound       = errors.New("not found")
	ErrTokenUnknown   = errors.New("join token not recognised")
	ErrTokenExpired   = enroll.ErrTokenExpired
	ErrTokenUsedUp    = enroll.ErrTokenUsedUp
	ErrTokenRevoked   = enroll.ErrTokenRevoked
	ErrSchemaTooNew   = errors.New("database schema is newer than this control plane")
	ErrAlreadyRevoked = errors.New("join token already revoked")
)

// Store is the bbolt-backed state of one control plane.
type Store struct {
	db    *boltDB
	audit *audit.Log // nil: audited writes store no record
}

// Options tunes a Store.
type Options struct {
	// DiskReserve is the free space the data dir's file system must keep;
	// below it writes fail with ErrDiskFull. 0 means DefaultDiskReserve; a
	// negative value keeps none (writes then fail only on ENOSPC).
	DiskReserve int64
	// ObserveCommit, if set, is told the duration of every successful
	// commit (bbolt's page writes and fsync), for the commit latency metric.
	ObserveCommit func(time.Duration)
}

// Open opens or creates the database at path with the default options and
// checks its schema version.
func Open(path string) (*Store, error) { return OpenWith(path, Options{}) }

// OpenWith opens or creates the database at path and checks its schema
// version.
func OpenWith(path string, o Options) (*Store, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create store dir: %w", err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		if errors.Is(err, bolterrors.ErrTimeout) {
			return nil, fmt.Errorf("open %s: locked by another process (is another control plane running on this data dir?)", path)
		}
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	reserve := uint64(DefaultDiskReserve)
	switch {
	case o.DiskReserve < 0:
		reserve = 0
	case o.DiskReserve > 0:
		reserve = uint64(o.DiskReserve)
	}
	s := &Store{db: &boltDB{DB: db, guard: &diskGuard{dir: filepath.Dir(path), reserve: reserve}, commit: o.ObserveCommit}}
	if err := s.init(); err != nil {
		_ = db.Close()
		return nil, err
	}
	return s, nil
}

// init creates the buckets and migrates an older schema. It bypasses the
// disk reserve (only the meta page is rewritten when the buckets exist and
// the schema is current), so a control plane can start on a full disk and
// serve reads; a migration that runs out of space fails Open.
func (s *Store) init() error {
	return s.db.DB.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketMeta, bucketNodes, bucketNodeNames, bucketTokens, bucketJobs, bucketJobTasks, bucketJobsActive, bucketJobEvents, bucketJobKeys, bucketRestorePoints, bucketArtifacts, bucketReleases, bucketNodeCerts, bucketLateTasks, bucketTokenUses, bucketIdentities, bucketIdentityHashes, bucketArchiveKeys, bucketWalRanges, bucketWalHeals, bucketOutbox, bucketAlerts, bucketAlertTransitions} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return fmt.Errorf("create bucket %s: %w", b, err)
			}
		}
		if err := audit.CreateBuckets(tx); err != nil {
			return err
		}
		meta := tx.Bucket(bucketMeta)
		raw := meta.Get(keySchemaVersion)
		if raw == nil {
			return meta.Put(keySchemaVersion, []byte(strconv.Itoa(SchemaVersion)))
		}
		v, err := strconv.Atoi(string(raw))
		if err != nil {
			return fmt.Errorf("schema version %q: %w", raw, err)
		}
		if v > SchemaVersion {
			return fmt.Errorf("%w: database has version %d, this binary knows %d: run a newer forlock-controlplane", ErrSchemaTooNew, v, SchemaVersion)
		}
		return migrate(tx, v)
	})
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// AdminTokenHash returns the stored admin token hash, or nil if none is set.
func (s *Store) AdminTokenHash() ([]byte, error) {
	var h []byte
	err := s.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketMeta).Get(keyAdminHash); v != nil {
			h = append([]byte(nil), v...)
		}
		return nil
	})
	return h, err
}

// SetAdminTokenHash stores the admin token hash, replacing any previous one.
func (s *Store) SetAdminTokenHash(h []byte) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(keyAdminHash, h)
	})
}

// Path is the database file's path.
func (s *Store) Path() string { return s.db.Path() }
