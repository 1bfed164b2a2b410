package audit

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"
)

// File is an append-only JSON-lines output: one line per checkpoint, and
// with Records one line per record before it. Without Records it is the
// checkpoint file beside the database; with Records it is the sink a log
// shipper reads (syslog, a SIEM agent). Lines carry "type": "record" or
// "checkpoint". Writes are not synced: a crash of the machine may lose the
// newest lines, a crash of the process does not.
type File struct {
	Path    string
	Records bool
	// MaxBytes, for a checkpoint file, is the size past which it is
	// rewritten with its newest checkpoint only (old checkpoints add little
	// once the newest matches). 0 means 1 MiB. A sink is never rewritten: its
	// shipper rotates it.
	MaxBytes int64

	mu sync.Mutex
	f  *os.File
}

type recordLine struct {
	Type string `json:"type"`
	Entry
}

type checkpointLine struct {
	Type string `json:"type"`
	Checkpoint
}

// Write appends a committed batch.
func (o *File) Write(b Batch) error {
	var buf []byte
	if o.Records {
		for i := range b.Entries {
			l, err := json.Marshal(recordLine{Type: "record", Entry: b.Entries[i]})
			if err != nil {
				return err
			}
			buf = append(append(buf, l...), '\n')
		}
	}
	l, err := json.Marshal(checkpointLine{Type: "checkpoint", Checkpoint: b.Head})
	if err != nil {
		return err
	}
	buf = append(append(buf, l...), '\n')

	o.mu.Lock()
	defer o.mu.Unlock()
	if o.f == nil {
		f, err := os.OpenFile(o.Path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			return fmt.Errorf("open audit output: %w", err)
		}
		o.f = f
	}
	if _, err := o.f.Write(buf); err != nil {
		return fmt.Errorf("write audit output %s: %w", o.Path, err)
	}
	if o.Records {
		return nil
	}
	max := o.MaxBytes
	if max <= 0 {
		max = 1 << 20
	}
	if st, err := o.f.Stat(); err == nil && st.Size() > max {
		return o.compact(l)
	}
	return nil
}

// compact rewrites the checkpoint file with its newest line only.
func (o *File) compact(newest []byte) error {
	tmp := o.Path + ".new"
	if err := os.WriteFile(tmp, append(newest, '\n'), 0o600); err != nil {
		return err
	}
	if err := os.Rename(tmp, o.Path); err != nil {
		return err
	}
	_ = o.f.Close()
	o.f = nil
	return nil
}

// Close closes the file.
func (o *File) Close() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.f == nil {
		return nil
	}
	err := o.f.Close()
	o.f = nil
	return err
}

// ReadCheckpoints returns the checkpoints in a checkpoint file or sink. A
// missing file has none; a torn last line (a crash mid-write) is ignored;
// any other line that does not decode is an error.
func ReadCheckpoints(path string) ([]Checkpoint, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }() // read only: nothing to flush
	var out []Checkpoint
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	n, bad := 0, 0
	for sc.Scan() {
		n++
		if bad != 0 {
			return nil, fmt.Errorf("%s line %d does not decode", path, bad)
		}
		var l checkpointLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			bad = n
			continue
		}
		if l.Type == "checkpoint" {
			out = append(out, l.Checkpoint)
		}
	}
	return out, sc.Err()
}
