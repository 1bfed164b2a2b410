// Package datadir names the files of the control plane's data directory:
// the server creates and reads them, a snapshot copies them and a restore
// writes them back, so the list lives in one place and a file added to the
// data dir is in every snapshot.
package datadir

// The files of the data directory.
const (
	CACert           = "ca.crt"
	CAKey            = "ca.key"
	ServerCert       = "server.crt"
	ServerKey        = "server.key"
	DB               = "fleet.db"
	CtlConfig        = "forlockctl.yaml"
	KEK              = "backup-kek.json"
	AuditKey         = "audit.key"
	AuditCheckpoints = "audit-checkpoints.jsonl"
)

// File is a file of the data directory and the widest mode it may have.
type File struct {
	Name string
	Mode int64
}

// Files are the files a snapshot copies when they exist, besides the
// database (copied through a read transaction). forlockctl.yaml holds the
// admin token the database holds the hash of: without it a restored control
// plane needs --rotate-admin-token.
var Files = []File{
	{CACert, 0o644}, {CAKey, 0o600}, {ServerCert, 0o644}, {ServerKey, 0o600},
	{KEK, 0o600}, {AuditKey, 0o600}, {AuditCheckpoints, 0o600}, {CtlConfig, 0o600},
}
