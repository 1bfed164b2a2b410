package store

import (
	"fmt"
	"strconv"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// migrations[v] turns a database of schema version v into v+1. Open runs
// those a database needs in its opening transaction, so a database is
// either wholly migrated or left as it was (a failed migration, e.g. for
// lack of space, fails Open and changes nothing).
var migrations = map[int]func(tx *bolt.Tx) error{
	1: migrateJobRecords,
}

// migrate brings the database from schema version v to SchemaVersion and
// records the version. A current database is not written to.
func migrate(tx *bolt.Tx, v int) error {
	if v == SchemaVersion {
		return nil
	}
	for ; v < SchemaVersion; v++ {
		m := migrations[v]
		if m == nil {
			return fmt.Errorf("no migration from schema version %d", v)
		}
		if err := m(tx); err != nil {
			return fmt.Errorf("migrate schema %d to %d: %w", v, v+1, err)
		}
	}
	return tx.Bucket(bucketMeta).Put(keySchemaVersion, []byte(strconv.Itoa(SchemaVersion)))
}

// migrateJobRecords (schema 1 -> 2) splits every job, stored whole as a
// protobuf forlockv1.Job in jobs/, into a job record and its task records
// (records.go). Events, the active set and the idempotency keys are
// unchanged. One job is decoded at a time: memory holds the job IDs and
// one job, whatever the history's size.
func migrateJobRecords(tx *bolt.Tx) error {
	var ids [][]byte
	if err := tx.Bucket(bucketJobs).ForEach(func(k, _ []byte) error {
		ids = append(ids, append([]byte(nil), k...))
		return nil
	}); err != nil {
		return err
	}
	jobs := tx.Bucket(bucketJobs)
	for _, id := range ids {
		j := &forlockv1.Job{}
		if err := proto.Unmarshal(jobs.Get(id), j); err != nil {
			return fmt.Errorf("decode schema-1 job %s: %w", id, err)
		}
		e, err := encodeJob(j)
		if err != nil {
			return err
		}
		if err := e.put(tx); err != nil {
			return fmt.Errorf("job %s: %w", id, err)
		}
	}
	return nil
}
