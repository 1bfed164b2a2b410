// Package walarchive archives a node's PostgreSQL write-ahead log
// continuously, for point-in-time restore, and fetches it back for one.
//
// The Archiver is one of the agent's Run(ctx) tasks, not a task of the job
// engine: it runs while the control plane is down.
//
//	postgres ──replication slot "forlock_archive"──► pg_receivewal --synchronous
//	  (docker exec in the postgres container, peer auth on the local socket)
//	  └─► spool dir in the container (/var/lib/postgresql/forlock-wal-spool)
//	        └─ every ship interval: find, cat ──► artifact.Writer (kind "wal",
//	           zstd, fresh data key, AES-256-GCM) ──► backupstore (a host
//	           directory or an S3 bucket)
//	           <prefix>wal/<node-id>/<timeline>/<segment>[.partial].zst.enc
//
// Why an exec in the postgres container and not a one-off container beside
// it: the test node's (and the guide's) server lets the superuser replicate
// only by peer authentication on its local socket, which lives in the
// container's own file system; a container beside it would need a
// replication password the agent does not have. The exec's standard input
// is held by the agent, so pg_receivewal stops when the agent goes.
//
// A complete segment is removed from the spool only once stored; the
// growing partial one is shipped again whenever it changed (its size or
// modification time), at most every PartialInterval (longer to S3, where
// each ship is a billed PUT), replacing the stored partial atomically, and the
// stored partial is deleted once the complete segment is stored. What was
// shipped is kept as contiguous ranges (state.go) in the agent's state
// directory, so a restarted agent neither loses nor counts twice: shipping
// a segment again is idempotent. Each file's data key is wrapped by the
// node's archive key (KeyStore, 0600 in the state directory), which the
// control plane issues and rotates; it keeps every archive key and sends
// the ones a restore needs back inside the restore task.
//
// Failures and what they do: PostgreSQL restarts or the slot is dropped:
// pg_receivewal ends, Run waits (1 s doubling to 30 s) and starts again,
// creating the slot if it is missing; a new slot starts at the server's
// current position, so the WAL jumps and the new range is not contiguous:
// a gap, reported (WalReport.gap, the wal_archive check) until a base backup
// taken after it (NoteBaseBackup). The destination full or away: the WAL
// stays in the spool (and the slot keeps it on the server), shipping is
// retried with the same back-off, never in a tight loop.
package walarchive
