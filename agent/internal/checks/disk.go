package checks

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/forlock/fleet/agent/internal/hostinfo"
)

// Names of the disk checks, one per kind of directory, in report order.
const (
	DiskState      = "disk"             // the agent's state directory
	DiskDocker     = "disk/docker"      // Docker's data root
	DiskBackup     = "disk/backup"      // every directory of backup_dirs
	DiskWALArchive = "disk/wal-archive" // wal_archive_dir
)

// Disk checks the free space of the file systems holding some directories
// of one kind: one result, the worst of its directories, with a free_ratio
// measurement per file system judged (subject: the directory).
//
// A host often has one file system for everything: the state directory,
// Docker's data root and the backups all on /. One full disk then must
// not raise four alarms, so a directory on the file system (same device
// ID) of a directory judged before it, by this check or by one of Judged,
// is named in the summary but neither judged nor measured again. A
// directory that does not exist (yet) is UNKNOWN and names the setting: a
// missing mount point must not be mistaken for its parent's file system.
type Disk struct {
	// Check is the check's name, one of the Disk* constants; empty means
	// DiskState.
	Check string
	// Setting names where the directories come from, for messages, e.g.
	// "backup_dirs".
	Setting string
	// Dirs are the directories to check.
	Dirs []string
	// Locate, if set, finds the one directory to check at run time (Docker's
	// data root, asked of the Engine) instead of Dirs.
	Locate func(ctx context.Context) (string, error)
	// Judged are directories that checks reported before this one judge.
	Judged []JudgedDir
	// StatFS reads a directory's file system.
	StatFS func(dir string) (hostinfo.FileSystem, error)
}

// JudgedDir is a directory another check judges.
type JudgedDir struct {
	Check, Dir string
}

// Name is the check's name.
func (d Disk) Name() string {
	if d.Check == "" {
		return DiskState
	}
	return d.Check
}

// Run reads each directory's file system and judges it.
func (d Disk) Run(ctx context.Context) Result {
	r := Result{Name: d.Name()}
	dirs := d.Dirs
	if d.Locate != nil {
		dir, err := d.Locate(ctx)
		if err != nil {
			r.Status, r.Summary = Unknown, fmt.Sprintf("cannot find %s: %v", d.Setting, err)
			return r
		}
		dirs = []string{dir}
	}
	if len(dirs) == 0 {
		r.Status, r.Summary = Unknown, fmt.Sprintf("no directory to check: set %s", d.Setting)
		return r
	}
	// Where each device is judged, by device ID. A judged directory that
	// cannot be read is left out: its own check reports that.
	judgedOn := map[uint64]string{}
	for _, j := range d.Judged {
		if f, err := d.StatFS(j.Dir); err == nil {
			if _, ok := judgedOn[f.Device]; !ok {
				judgedOn[f.Device] = fmt.Sprintf("%s (%s)", j.Check, j.Dir)
			}
		}
	}
	parts := make([]string, 0, len(dirs))
	for _, dir := range dirs {
		st, part := Unknown, ""
		f, err := d.StatFS(dir)
		switch {
		case errors.Is(err, fs.ErrNotExist) && d.Locate != nil:
			part = fmt.Sprintf("%s, %s, is not visible here: run the agent on that host, or mount it", dir, d.Setting)
		case errors.Is(err, fs.ErrNotExist):
			part = fmt.Sprintf("%s does not exist: create it or fix %s", dir, d.Setting)
		case err != nil:
			part = fmt.Sprintf("cannot read the file system of %s: %v", dir, err)
		case judgedOn[f.Device] != "":
			st, part = OK, fmt.Sprintf("%s is on the file system of %s, judged there", dir, judgedOn[f.Device])
		default:
			v := EvaluateDisk(f.Total, f.Free)
			st, part = v.Status, dir+": "+v.Summary
			for _, m := range v.Measurements {
				m.Subject = dir
				r.Measurements = append(r.Measurements, m)
			}
			judgedOn[f.Device] = fmt.Sprintf("%s (%s)", r.Name, dir)
		}
		r.Status = max(r.Status, st)
		parts = append(parts, part)
	}
	r.Summary = strings.Join(parts, "; ")
	return r
}
