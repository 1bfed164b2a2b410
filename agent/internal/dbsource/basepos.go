package dbsource

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"time"
)

// BasePosition is where a physical base backup sits in the WAL.
type BasePosition struct {
	// StartLSN and Timeline are backup_label's START WAL LOCATION and START
	// TIMELINE: WAL replay for a point-in-time restore starts there.
	StartLSN string
	Timeline uint32
	// EndLSN is pg_current_wal_lsn() read right after pg_basebackup
	// returned: at or after the backup's consistency point (pg_basebackup
	// does not print its end position in tar-to-stdout mode), so recovery
	// replaying to it is consistent.
	EndLSN string
	// EndTime is when pg_basebackup returned.
	EndTime time.Time
}

// labelHead is how much of the tar stream is kept to find backup_label:
// the server sends it first in the base tar.
const labelHead = 64 << 10

// headWriter keeps the first labelHead bytes written through it.
type headWriter struct {
	w    io.Writer
	head bytes.Buffer
}

func (h *headWriter) Write(p []byte) (int, error) {
	if rest := labelHead - h.head.Len(); rest > 0 {
		h.head.Write(p[:min(rest, len(p))])
	}
	return h.w.Write(p)
}

var (
	startRe    = regexp.MustCompile(`(?m)^START WAL LOCATION: ([0-9A-F]{1,8}/[0-9A-F]{1,8}) `)
	timelineRe = regexp.MustCompile(`(?m)^START TIMELINE: ([0-9]{1,10})$`)
)

// BaseBackupAt is BaseBackup that also returns the backup's WAL position.
func (p Postgres) BaseBackupAt(ctx context.Context, w io.Writer) (BasePosition, error) {
	hw := &headWriter{w: w}
	if err := p.BaseBackup(ctx, hw); err != nil {
		return BasePosition{}, err
	}
	pos := BasePosition{EndTime: time.Now().UTC()}
	label, err := backupLabel(hw.head.Bytes())
	if err != nil {
		return BasePosition{}, err
	}
	start := startRe.FindSubmatch(label)
	tl := timelineRe.FindSubmatch(label)
	if start == nil || tl == nil {
		return BasePosition{}, errors.New("backup_label of the base backup has no START WAL LOCATION or START TIMELINE")
	}
	n, err := strconv.ParseUint(string(tl[1]), 10, 32)
	if err != nil || n == 0 {
		return BasePosition{}, fmt.Errorf("backup_label: timeline %q", tl[1])
	}
	pos.StartLSN, pos.Timeline = string(start[1]), uint32(n)
	if pos.EndLSN, err = p.Query(ctx, "SELECT pg_current_wal_lsn()"); err != nil {
		return BasePosition{}, fmt.Errorf("read the WAL position after the base backup: %w", err)
	}
	return pos, nil
}

// backupLabel finds backup_label among the first entries of a tar.
func backupLabel(head []byte) ([]byte, error) {
	tr := tar.NewReader(bytes.NewReader(head))
	for {
		h, err := tr.Next()
		if err != nil {
			return nil, fmt.Errorf("no backup_label at the start of the base backup: %w", err)
		}
		if h.Name == "backup_label" || h.Name == "./backup_label" {
			return io.ReadAll(bufio.NewReader(io.LimitReader(tr, 16<<10)))
		}
	}
}
