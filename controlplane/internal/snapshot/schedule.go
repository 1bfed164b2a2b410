package snapshot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/forlock/fleet/controlplane/internal/secretfile"
	"github.com/forlock/fleet/internal/backupstore"
	"github.com/forlock/fleet/internal/keys"
)

// DefaultKeep is how many scheduled snapshots are kept by default.
const DefaultKeep = 7

// Schedule is when the control plane saves snapshots by itself, where (a
// directory or an S3 bucket), encrypted to what (a passphrase file or a
// Vault Transit key), and how many it keeps. The zero Schedule (no Cron)
// saves none.
type Schedule struct {
	// Cron is five fields in UTC, or @daily, @every 6h...; "" is off.
	Cron string
	// Dir receives the snapshots, named FileName(time); or S3 does.
	Dir string
	// S3 is the bucket that receives them instead of Dir.
	S3 S3
	// Keep is how many scheduled snapshots stay in Dir or under S3's
	// prefix; older ones of this name pattern are deleted after each save.
	// At least 1.
	Keep int
	// PassphraseFile holds the passphrase (mode 0600); it is read at every
	// save, so it can be replaced without a restart.
	PassphraseFile string
	// TransitKey names the Vault Transit key that wraps the snapshots'
	// data keys instead of a passphrase (on the control plane's Vault).
	TransitKey string

	when cron.Schedule
}

// S3 is the S3 bucket of scheduled snapshots. The keys are read at every
// save: from their files (mode 0600), so they can be replaced without a
// restart, or as given (the environment).
type S3 struct {
	// Endpoint is the server's host:port, without scheme.
	Endpoint string
	// Bucket must exist; Prefix, if set, is a folder in it.
	Bucket, Prefix string
	// TLS selects https; Region defaults to us-east-1.
	TLS    bool
	Region string
	// AccessKey or AccessKeyFile, SecretKey or SecretKeyFile; a file wins.
	AccessKey, AccessKeyFile string
	SecretKey, SecretKeyFile string
}

// Check validates s and parses its cron expression.
func (s *Schedule) Check() error {
	if s.Cron == "" {
		return nil
	}
	when, err := cron.ParseStandard(s.Cron)
	if err != nil || strings.HasPrefix(s.Cron, "TZ=") || strings.HasPrefix(s.Cron, "CRON_TZ=") {
		return fmt.Errorf("snapshots schedule %q: give five fields in UTC, e.g. \"30 1 * * *\", or @daily, @every 6h", s.Cron)
	}
	s.when = when
	switch {
	case s.Dir != "" && s.S3.Bucket != "":
		return errors.New("snapshots dir and s3_bucket: give one place for scheduled snapshots, not both")
	case s.S3.Bucket == "" && s.S3 != (S3{}):
		return errors.New("snapshots s3_*: set snapshots.s3_bucket too, or remove the other s3_ settings")
	case s.S3.Bucket != "":
		if err := s.S3.check(); err != nil {
			return err
		}
	case s.Dir == "" || !filepath.IsAbs(s.Dir):
		return errors.New("snapshots dir: give an absolute directory for scheduled snapshots (off the data dir's disk, ideally another machine's mount), or an S3 bucket (snapshots.s3_bucket)")
	}
	switch {
	case s.PassphraseFile != "" && s.TransitKey != "":
		return errors.New("snapshots passphrase_file and transit_key: scheduled snapshots are encrypted to one of them, give one")
	case s.PassphraseFile == "" && s.TransitKey == "":
		return errors.New("snapshots passphrase_file or transit_key: scheduled snapshots are encrypted to the passphrase in this file (mode 0600), or to this Vault Transit key")
	case s.Keep < 1:
		return fmt.Errorf("snapshots keep %d: keep at least 1", s.Keep)
	}
	return nil
}

func (c S3) check() error {
	bucketErr := backupstore.ValidateBucket(c.Bucket)
	switch {
	case c.Endpoint == "" || strings.Contains(c.Endpoint, "/"):
		return fmt.Errorf("snapshots s3_endpoint %q: give the S3 server's HOST:PORT, without scheme (s3_tls selects https)", c.Endpoint)
	case bucketErr != nil:
		return fmt.Errorf("snapshots s3_bucket: %w", bucketErr)
	case c.AccessKey == "" && c.AccessKeyFile == "":
		return errors.New("snapshots s3 access key: set snapshots.s3_access_key_file (a file of mode 0600) or its environment variable")
	case c.SecretKey == "" && c.SecretKeyFile == "":
		return errors.New("snapshots s3 secret key: set snapshots.s3_secret_key_file (a file of mode 0600) or its environment variable")
	}
	if c.Prefix != "" {
		if err := backupstore.ValidateName(c.Prefix); err != nil {
			return fmt.Errorf("snapshots s3_prefix: %w", err)
		}
	}
	return nil
}

// SecretFiles are the files of s that hold secrets, with what each holds.
func (s *Schedule) SecretFiles() [][2]string {
	var files [][2]string
	for _, f := range [][2]string{{s.PassphraseFile, "the snapshots' passphrase"},
		{s.S3.AccessKeyFile, "the snapshots' S3 access key"}, {s.S3.SecretKeyFile, "the snapshots' S3 secret key"}} {
		if f[0] != "" {
			files = append(files, f)
		}
	}
	return files
}

// RunSchedule saves a snapshot at every time of sched until ctx ends. A
// failed save is logged and tried again at the next time.
func (s *Saver) RunSchedule(ctx context.Context, sched Schedule, log *slog.Logger) error {
	if sched.Cron == "" {
		return nil
	}
	if sched.when == nil {
		if err := sched.Check(); err != nil {
			return err
		}
	}
	for {
		next := sched.when.Next(s.cfg.Now().UTC())
		t := time.NewTimer(time.Until(next))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		where, res, err := s.SaveScheduled(ctx, sched)
		if err != nil {
			log.Error("scheduled control-plane snapshot failed; next try at the next scheduled time", "to", sched.place(), "err", err)
			continue
		}
		log.Info("scheduled control-plane snapshot saved", "location", where, "bytes", res.Size, "sha256", res.SHA256, "key_id", res.KeyID)
	}
}

// place is where sched saves, for messages.
func (s *Schedule) place() string {
	if s.S3.Bucket != "" {
		return "s3://" + s.S3.Bucket + "/" + s.S3.Prefix
	}
	return s.Dir
}

// store is where scheduled snapshots go: a backupstore.Dir or S3.
type store interface {
	Put(ctx context.Context, name string, r io.Reader) (int64, error)
	List(ctx context.Context, dir string) ([]string, error)
	Delete(ctx context.Context, name string) error
	Location(name string) string
}

// open returns sched's store and what closes it; the S3 keys are read now.
func (s *Schedule) open() (store, func(), error) {
	if s.S3.Bucket == "" {
		d, err := backupstore.NewDir(backupstore.DirConfig{Root: s.Dir})
		return d, func() {}, err
	}
	c := s.S3
	ak, err := readKey(c.AccessKey, c.AccessKeyFile, "S3 access key")
	if err != nil {
		return nil, nil, err
	}
	sk, err := readKey(c.SecretKey, c.SecretKeyFile, "S3 secret key")
	if err != nil {
		return nil, nil, err
	}
	st, err := backupstore.NewS3(backupstore.S3Config{Endpoint: c.Endpoint, Bucket: c.Bucket, Prefix: c.Prefix,
		AccessKey: ak, SecretKey: sk, TLS: c.TLS, Region: c.Region})
	if err != nil {
		return nil, nil, err
	}
	return st, func() { _ = st.Close() }, nil
}

// readKey returns the key in file, or value when there is no file.
func readKey(value, file, what string) (string, error) {
	if file != "" {
		return secretfile.Read(file, what)
	}
	return strings.TrimSpace(value), nil
}

// encryption reads sched's passphrase file, or names its Transit key.
func (s *Schedule) encryption() (Encryption, error) {
	if s.TransitKey != "" {
		return Encryption{TransitKey: s.TransitKey}, nil
	}
	pass, err := keys.ReadPassphraseFile(s.PassphraseFile)
	return Encryption{Passphrase: pass}, err
}

// SaveScheduled saves one snapshot into sched's directory or bucket and
// deletes the oldest scheduled snapshots there beyond sched.Keep; it
// returns where the snapshot went. The key is wrapped and the store opened
// before the database is read; the snapshot is spooled in the data dir and
// then copied (atomically into a directory, 0600; as one multipart upload
// to S3), so a slow S3 never holds the database's read transaction, and a
// failed save leaves nothing behind.
func (s *Saver) SaveScheduled(ctx context.Context, sched Schedule) (string, Result, error) {
	enc, err := sched.encryption()
	if err != nil {
		return "", Result{}, err
	}
	w, err := s.Wrapper(ctx, enc)
	if err != nil {
		return "", Result{}, err
	}
	st, closeStore, err := sched.open()
	if err != nil {
		return "", Result{}, fmt.Errorf("snapshots %s: %w", sched.place(), err)
	}
	defer closeStore()
	f, res, err := s.Spool(ctx, w)
	if err != nil {
		return "", Result{}, err
	}
	defer func() { _ = f.Close() }()
	if _, err := st.Put(ctx, res.FileName, f); err != nil {
		return "", Result{}, fmt.Errorf("snapshot %s: %w", st.Location(res.FileName), err)
	}
	return st.Location(res.FileName), res, prune(ctx, st, sched.Keep)
}

// prune deletes the oldest snapshots named like scheduled ones in st beyond
// keep; FileName sorts by time.
func prune(ctx context.Context, st store, keep int) error {
	all, err := st.List(ctx, "")
	if err != nil {
		return fmt.Errorf("snapshots retention: %w", err)
	}
	var names []string
	for _, n := range all { // sorted
		if strings.HasPrefix(n, namePrefix) && strings.HasSuffix(n, nameSuffix) {
			names = append(names, n)
		}
	}
	for len(names) > keep {
		if err := st.Delete(ctx, names[0]); err != nil {
			return fmt.Errorf("snapshots retention: %w", err)
		}
		names = names[1:]
	}
	return nil
}
