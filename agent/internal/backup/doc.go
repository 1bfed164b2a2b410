// Package backup runs the agent's backup and restore tasks.
//
// A backup task (Handler, kind "backup") makes one restore point of the
// node: for each requested kind one artifact, streamed
//
//	source ──► artifact.Writer (zstd, AES-256-GCM streaming AEAD, SHA-256) ──► backupstore
//
// where the source is pg_dump -Fc out of the postgres container (or, for a
// physical backup, pg_basebackup's tar of the cluster), the RDB of
// a fresh Redis BGSAVE, or a tar of the compose directory (with .env) and
// nginx's /etc/nginx. Each artifact is sealed with the data key the control
// plane sent for its kind (tasks.Assignment.Keys); the plain key stays in memory.
// Artifacts go to a host directory inside the agent's allowed backup
// directories, or to a bucket of the S3 server configured on the agent.
// Names follow the operations guide: postgres_YYYYMMDD_HHMMSS.dump.zst.enc,
// redis_….rdb.zst.enc, config_….tar.zst.enc (UTC). A failed or cancelled
// backup removes every file it wrote, so the task fails with nothing to
// catalog.
//
// A restore task (RestoreHandler, kind "restore") first verifies every
// artifact (checksum and decryption of every segment) and refuses before it
// stops or changes anything; then it stops the API container, restores
// PostgreSQL (pg_restore --clean --if-exists in one transaction) and Redis
// (stop, replace the RDB file, start), starts the API again whatever
// happened, and waits until it is healthy. Config artifacts are verified,
// not applied: the task names where they are. A physical PostgreSQL
// artifact is verified while it is staged beside the live data, then
// swapped in with the server stopped and rolled back if the server does
// not come up on it (restore_physical.go, restore_stage.go).
package backup
