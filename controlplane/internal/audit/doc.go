// Package audit is the control plane's tamper-evident record of who did
// what: every mutating call of the operator API, every enrollment, renewal
// and identity change, and every denied call.
//
// Records live in bbolt beside the state they describe and are appended in
// the same transaction as the change they record, so a change that
// committed has its record and a record never describes a change that did
// not happen. When the record cannot be written (a full disk), the
// transaction fails and so does the call: the log fails closed.
//
// Bucket tree:
//
//	audit/
//	  <seq, 8 bytes big-endian>  -> chain hash (32 bytes) + JSON Record
//	audit_meta/
//	  head    -> JSON Checkpoint of the newest record, signed
//	  anchor  -> JSON Checkpoint of the last record pruned by retention,
//	             signed (absent until the first prune)
//
// A record's chain hash is SHA-256(previous chain hash || the record's JSON
// bytes), the first record's previous hash being 32 zero bytes (or the
// anchor's after a prune). Verify recomputes every link, so an edited byte
// names its record, and a deleted record leaves a gap in the sequence. The signed head makes an edit of the
// newest record visible, and a signed anchor makes pruning by anyone but the
// control plane visible. What the database alone cannot show is a rollback
// of the whole file (or the newest records with the head): for that every
// head is also appended to a checkpoint file outside the database (and, when
// configured, to a JSON-lines sink a log shipper takes off the machine);
// Verify with those checkpoints reports a database behind them.
//
// The checkpoint key is an Ed25519 key of its own (never the fleet CA key),
// in a 0600 file beside the database. Someone who can write that file and the
// database can rewrite history; the off-machine sink is what they cannot
// reach. Records hold no secret: request summaries drop every field that
// could carry one (Summarize).
package audit
