// Package backupstore is where artifacts go once they are compressed,
// encrypted and checksummed: a directory on the host (Dir) or a bucket on an
// S3-compatible server (S3). Both implement Store. The agent keeps its
// backups there, the control plane its scheduled snapshots.
//
// Artifact names are relative slash-separated paths checked by ValidateName
// before any file or object is touched, so a name from a task can never
// reach outside the configured directory or prefix:
//
//	Dir root /var/backups/forlock        S3 bucket "backups", prefix "fleet"
//	└── node-1/                          └── fleet/node-1/
//	    └── postgres_20260101_120000.dump.zst.enc
//
// Both stores stream: an artifact of unknown size never sits in memory whole
// (S3 uploads go in parts of PartSize, one part buffered at a time), and a
// failed Put leaves nothing behind under the name.
package backupstore

import (
	"context"
	"errors"
	"io"
)

// Store keeps backup artifacts under validated names.
type Store interface {
	// Put writes r to name until EOF and returns the bytes written. An
	// existing artifact of that name is replaced only when the write
	// succeeded; on any error nothing is left under name.
	Put(ctx context.Context, name string, r io.Reader) (int64, error)
	// Open returns the artifact's content and size. The caller closes it.
	Open(ctx context.Context, name string) (io.ReadCloser, int64, error)
	// Stat returns the artifact's size.
	Stat(ctx context.Context, name string) (int64, error)
	// Delete removes the artifact. Deleting a missing artifact is not an
	// error, so a retried delete succeeds.
	Delete(ctx context.Context, name string) error
	// Location is where the artifact lives, for the catalog and for
	// messages: a host path or s3://bucket/key. It does not check the name;
	// the other methods do.
	Location(name string) string
}

// Errors callers can test with errors.Is; the returned errors wrap them with
// the path or server concerned.
var (
	// ErrInvalidName: the artifact name is not a safe relative path.
	ErrInvalidName = errors.New("invalid artifact name")
	// ErrNotFound: no artifact of that name.
	ErrNotFound = errors.New("artifact not found")
	// ErrFull: the destination ran out of space or quota.
	ErrFull = errors.New("backup destination full")
	// ErrUnreachable: the S3 server did not answer (refused, timed out).
	ErrUnreachable = errors.New("S3 server unreachable")
)
