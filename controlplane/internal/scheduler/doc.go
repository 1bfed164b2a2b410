// Package scheduler is what the control plane does on its own, by the
// clock, through the job engine: the operations guide's backup policy
// table (backup_schedules: a backup job per schedule at its cron fire
// times, in UTC), retention (a delete_backup job for each restore point a
// schedule made longer ago than its keep, but the newest of each node),
// and the certificate rotation policy (a cert_rotate job for a connected
// node whose certificate has under 30 days left or was installed by us 90
// days ago). It decides what to submit and when; the job engine runs it.
//
// Missed fire times. A fire time that passes while the control plane is
// down is not made up: at start each schedule waits for its next fire
// time after now. While it runs, a fire time passed late (a slow submit, a
// suspended machine) is still submitted, at once, and the one after it is
// computed from that fire time, not from now, so a late loop catches up
// one fire time after another. Every submission carries an idempotency key
// that names what it is for, so a repeat is one job, not two:
//
//	backup-schedule/<name>/<fire time, RFC 3339 UTC>   a scheduled backup
//	backup-retention/<restore point>/<UTC day>         a retention delete
//	cert-policy-<node>-<UTC day>                       a rotation
//
// Retention and the certificate policy are not fire times but periodic
// checks (Config.RetentionInterval, Config.CertCheckInterval; retention
// also runs after each scheduled backup). A check that is missed is not
// made up either; the next one sees the same catalog and fleet and submits
// what is still due. A delete or rotation of a node that is offline is
// skipped by the job (offline policy skip) and tried again the next day,
// when the day in its key changes. The first certificate check runs one
// interval after start, not at start.
//
// The scheduler reads the catalog, installed certificates and connected
// nodes and submits jobs through narrow interfaces declared beside their
// use (Jobs, Catalog, Certificates, Nodes); the control plane passes its
// store, registry and job engine.
package scheduler
