package commands

import (
	"fmt"
	"io"
	"path"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/forlock/fleet/internal/backupstore"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

const backupHelp = `Back up the Forlock stack of a set of nodes, as a backup job: each node makes
one restore point of up to three artifacts, PostgreSQL (pg_dump -Fc), Redis
(dump.rdb after a finished BGSAVE) and config (a tar of the compose
directory, .env and nginx configuration). Each artifact is compressed (zstd),
encrypted (AES-256-GCM, a fresh data key per artifact wrapped by the control
plane's key-encryption key) and checksummed (SHA-256), then cataloged.

Where the artifacts go:
  (default)             the agent's default backup directory, /var/backups/forlock
  --dest DIR            an absolute directory on each node's host; the agent
                        accepts only directories under its allowed backup dirs
  --s3 BUCKET           a bucket of the S3-compatible store configured on each
                        agent, under --s3-prefix (its endpoint and credentials
                        never leave the host)

PostgreSQL formats (--pg-format):
  logical (default)     pg_dump -Fc of the Forlock database: restores onto any
                        PostgreSQL major version, with pg_restore in one
                        transaction
  physical              pg_basebackup of the whole cluster (every database,
                        roles and passwords): by replacing the data
                        directory, restores a large database several times
                        faster (a small one a few seconds slower), onto the
                        same major version only (postgres_….base.tar.zst.enc)

Files are named as the Forlock guide names them, with the real format in the
extension: <node>/postgres_YYYYMMDD_HHMMSS.dump.zst.enc, redis_….rdb.zst.enc,
config_….tar.zst.enc.

The final table lists each node's task, then the artifacts it wrote (KIND,
FILE, SIZE, SHA256 prefix, LOCATION). See 'forlockctl restore --list' for the
catalog and 'forlockctl backup decrypt' to read an artifact without the
control plane.

`

// backupFlags are the backup-specific flags.
type backupFlags struct {
	dest     string
	bucket   string
	prefix   string
	only     []string
	pgFormat string
	jobFlags jobFlags
}

func newBackupCmd(a *app) *cobra.Command {
	var f backupFlags
	cmd := &cobra.Command{
		Use:   "backup",
		Short: "Back up PostgreSQL, Redis and config of a set of nodes (encrypted, cataloged)",
		Long:  backupHelp + jobFlagsHelp,
		Example: `  forlockctl backup --all
  forlockctl backup --node web-1 --only postgres,redis
  forlockctl backup --node web-1 --pg-format physical
  forlockctl backup -l env=prod --s3 forlock-backups --s3-prefix fleet/ --max-parallel 2
  forlockctl backup --node web-1 --dest /srv/backups/forlock`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			spec, err := f.spec(cmd.Flags())
			if err != nil {
				return err
			}
			return a.runJob(cmd, &f.jobFlags, spec, backupTable)
		},
	}
	fs := cmd.Flags()
	f.jobFlags.register(fs)
	fs.StringVar(&f.dest, "dest", "", "write to this absolute directory on each node's host (default: the agent's, /var/backups/forlock)")
	fs.StringVar(&f.bucket, "s3", "", "write to this bucket of the S3-compatible store configured on each agent")
	fs.StringVar(&f.prefix, "s3-prefix", "", "key prefix inside the --s3 bucket, e.g. fleet/")
	fs.StringSliceVar(&f.only, "only", nil, "back up only these: "+kindList+" (default all three)")
	fs.StringVar(&f.pgFormat, "pg-format", "logical", "PostgreSQL backup format: logical (pg_dump) or physical (pg_basebackup, faster restore, same major version only)")
	cmd.AddCommand(newDecryptCmd(a))
	return cmd
}

// spec validates the backup flags into a job spec. The control plane checks
// the same rules; checking here fails before any call.
func (f *backupFlags) spec(fs *pflag.FlagSet) (*forlockv1.JobSpec, error) {
	only, err := parseKinds(fs, f.only)
	if err != nil {
		return nil, err
	}
	dest, err := destination(fs, f.dest, f.bucket, f.prefix)
	if err != nil {
		return nil, err
	}
	format, ok := pgFormats[f.pgFormat]
	if !ok {
		return nil, usageErrorf("--pg-format %q: use logical or physical", f.pgFormat)
	}
	return &forlockv1.JobSpec{Kind: &forlockv1.JobSpec_Backup{Backup: &forlockv1.BackupSpec{Only: only, Destination: dest, PostgresFormat: format}}}, nil
}

// pgFormats are the values --pg-format accepts.
var pgFormats = map[string]forlockv1.PostgresFormat{
	"logical":  forlockv1.PostgresFormat_POSTGRES_FORMAT_LOGICAL,
	"physical": forlockv1.PostgresFormat_POSTGRES_FORMAT_PHYSICAL,
}

// Limits as the control plane applies them.
const (
	maxDestLen   = 1024
	maxPrefixLen = 512
	kindList     = "postgres, redis, config"
)

// destination builds where a backup goes from --dest, --s3 and
// --s3-prefix; nil means the agent's default directory.
func destination(fs *pflag.FlagSet, dir, bucket, prefix string) (*forlockv1.BackupDestination, error) {
	switch {
	case fs.Changed("dest") && fs.Changed("s3"):
		return nil, usageErrorf("--dest and --s3 cannot be combined: write to a host directory or to a bucket")
	case fs.Changed("s3-prefix") && !fs.Changed("s3"):
		return nil, usageErrorf("--s3-prefix needs --s3 BUCKET")
	case fs.Changed("dest"):
		if err := validateDestDir(dir); err != nil {
			return nil, err
		}
		return &forlockv1.BackupDestination{Kind: &forlockv1.BackupDestination_Dir{Dir: dir}}, nil
	case fs.Changed("s3"):
		if err := validateBucket(bucket, prefix); err != nil {
			return nil, err
		}
		return &forlockv1.BackupDestination{Kind: &forlockv1.BackupDestination_S3{S3: &forlockv1.S3Location{Bucket: bucket, Prefix: prefix}}}, nil
	}
	return nil, nil
}

func validateDestDir(dir string) error {
	switch {
	case dir == "":
		return usageErrorf("--dest: empty path: give an absolute directory, or leave --dest out for the agent's default")
	case !path.IsAbs(dir):
		return usageErrorf("--dest %q: give an absolute directory on the node's host, e.g. /var/backups/forlock", dir)
	case slices.Contains(strings.Split(dir, "/"), ".."):
		return usageErrorf("--dest %q: '..' is not allowed: give the directory itself", dir)
	case path.Clean(dir) != dir:
		return usageErrorf("--dest %q: give a clean path (no '.', '//' or trailing '/'): %s", dir, path.Clean(dir))
	case strings.Contains(dir, ".."):
		return usageErrorf("--dest %q: '..' is not allowed in the path", dir)
	case len(dir) > maxDestLen:
		return usageErrorf("--dest: %d characters, at most %d", len(dir), maxDestLen)
	case strings.ContainsFunc(dir, func(r rune) bool { return r < ' ' || r == 0x7f }):
		return usageErrorf("--dest %q: control characters are not allowed", dir)
	}
	return nil
}

func validateBucket(bucket, prefix string) error {
	if backupstore.ValidateBucket(bucket) != nil {
		return usageErrorf("--s3 %q: a bucket name is 3-63 lower-case letters, digits, '.' and '-', starting and ending with a letter or digit", bucket)
	}
	switch {
	case strings.HasPrefix(prefix, "/"):
		return usageErrorf("--s3-prefix %q: give a relative key prefix, e.g. fleet/", prefix)
	case slices.Contains(strings.Split(prefix, "/"), ".."):
		return usageErrorf("--s3-prefix %q: '..' is not allowed", prefix)
	case len(prefix) > maxPrefixLen:
		return usageErrorf("--s3-prefix: %d characters, at most %d", len(prefix), maxPrefixLen)
	case strings.ContainsFunc(prefix, func(r rune) bool { return r < ' ' || r == 0x7f }):
		return usageErrorf("--s3-prefix %q: control characters are not allowed", prefix)
	}
	return nil
}

// kindNames are the names --only accepts.
var kindNames = map[string]forlockv1.ArtifactKind{
	"postgres": forlockv1.ArtifactKind_ARTIFACT_KIND_POSTGRES,
	"redis":    forlockv1.ArtifactKind_ARTIFACT_KIND_REDIS,
	"config":   forlockv1.ArtifactKind_ARTIFACT_KIND_CONFIG,
}

// parseKinds turns the --only values into artifact kinds, without
// duplicates, in the order given. An empty --only is refused, since no
// kinds would mean all of them.
func parseKinds(fs *pflag.FlagSet, vals []string) ([]forlockv1.ArtifactKind, error) {
	if fs.Changed("only") && len(vals) == 0 {
		return nil, usageErrorf("--only: empty: give one or more of %s, or leave --only out for all", kindList)
	}
	var out []forlockv1.ArtifactKind
	for _, v := range vals {
		name := strings.ToLower(strings.TrimSpace(v))
		k, ok := kindNames[name]
		if !ok {
			return nil, usageErrorf("--only %q: unknown kind: use one or more of %s", v, kindList)
		}
		if !slices.Contains(out, k) {
			out = append(out, k)
		}
	}
	return out, nil
}

// kindName is the short name of an artifact kind: postgres, redis, config.
func kindName(k forlockv1.ArtifactKind) string {
	for n, v := range kindNames {
		if v == k {
			return n
		}
	}
	return "unknown"
}

// backupTable ends a backup watch: the task table, then every artifact
// written, per node.
var backupTable = finisher{
	print: func(w io.Writer, j *forlockv1.Job) error {
		if err := printJobSummary(w, j); err != nil {
			return err
		}
		if err := printTaskTable(w, j.GetTasks()); err != nil {
			return err
		}
		var arts []*forlockv1.Artifact
		for _, t := range j.GetTasks() {
			arts = append(arts, t.GetArtifacts()...)
		}
		if len(arts) == 0 {
			return nil
		}
		if _, err := fmt.Fprintln(w); err != nil {
			return fmt.Errorf("write output: %w", err)
		}
		return printArtifactTable(w, arts)
	},
	result: jobResult,
}
