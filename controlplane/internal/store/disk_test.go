package store

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// smallDisk mounts a tmpfs of size bytes and returns its path.
func smallDisk(t *testing.T, size string) string {
	t.Helper()
	mnt := t.TempDir()
	if err := unix.Mount("tmpfs", mnt, "tmpfs", 0, "size="+size); err != nil {
		t.Fatalf("mount a %s tmpfs on %s: %v: run the tests as root (sudo go test ./controlplane/internal/store/) to test a full data disk", size, mnt, err)
	}
	t.Cleanup(func() { require.NoError(t, unix.Unmount(mnt, unix.MNT_DETACH)) })
	return mnt
}

// fill writes a file until the file system is full and returns its path.
func fill(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	require.NoError(t, err)
	buf := make([]byte, 4096)
	for {
		if _, err := f.Write(buf); err != nil {
			require.ErrorIs(t, err, unix.ENOSPC)
			break
		}
	}
	require.NoError(t, f.Close())
	return path
}

func token(id string) JoinToken {
	now := time.Now()
	return JoinToken{ID: id, Hash: []byte("h"), CreatedAt: now, ExpiresAt: now.Add(time.Hour), MaxUses: 1}
}

// TestDiskReserve: under the reserve every write is refused at once with
// the numbers; reads go on; freeing space ends the state by itself.
func TestDiskReserve(t *testing.T) {
	mnt := smallDisk(t, "4m")
	s, err := OpenWith(filepath.Join(mnt, "fleet.db"), Options{DiskReserve: 1 << 20})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	require.NoError(t, s.CreateToken(token("aaaaaaaaaaaa")))
	require.False(t, s.Disk().Full)
	require.NoError(t, s.CheckWritable())

	filler := fill(t, mnt)
	start := time.Now()
	err = s.CreateToken(token("bbbbbbbbbbbb"))
	require.Less(t, time.Since(start), 100*time.Millisecond, "refused before bbolt is asked")
	require.ErrorIs(t, err, ErrDiskFull)
	require.EqualError(t, err, "control plane data disk is full: free space in "+mnt+" (0 MiB free, reserve 1 MiB)")
	require.ErrorIs(t, s.CheckWritable(), ErrDiskFull)
	d := s.Disk()
	require.True(t, d.Full)
	require.Equal(t, mnt, d.Dir)
	require.Equal(t, uint64(1<<20), d.Reserve)
	require.WithinDuration(t, start, d.Since, time.Second)
	toks, err := s.ListTokens()
	require.NoError(t, err, "reads go on")
	require.Len(t, toks, 1)

	require.NoError(t, os.Remove(filler))
	require.NoError(t, s.CreateToken(token("bbbbbbbbbbbb")), "writes resume without reopening")
	require.False(t, s.Disk().Full)
	require.Greater(t, s.Disk().Free, uint64(1<<20))
}

// TestDiskENOSPC: with no reserve, a commit that runs out of space is
// ErrDiskFull too (wrapping ENOSPC), later small writes are refused until
// space grows, and the store is whole afterwards: bbolt rolled back.
func TestDiskENOSPC(t *testing.T) {
	mnt := smallDisk(t, "2m")
	s, err := OpenWith(filepath.Join(mnt, "fleet.db"), Options{DiskReserve: -1})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	filler := fill(t, mnt)

	big := &forlockv1.Job{Id: "big", State: forlockv1.JobState_JOB_STATE_RUNNING, CancelReason: strings.Repeat("x", 256<<10)}
	err = s.SaveJobs(JobWrite{Jobs: []*forlockv1.Job{big}})
	require.ErrorIs(t, err, ErrDiskFull)
	require.ErrorIs(t, err, unix.ENOSPC)
	require.ErrorContains(t, err, "control plane data disk is full: free space in "+mnt)
	require.NotErrorIs(t, err, ErrWriteFailed, "lack of space is not an I/O failure")
	require.True(t, s.Disk().Full)
	require.ErrorIs(t, s.CreateToken(token("aaaaaaaaaaaa")), ErrDiskFull, "refused until space returns")

	require.NoError(t, os.Remove(filler))
	require.NoError(t, s.SaveJobs(JobWrite{Jobs: []*forlockv1.Job{big}}))
	got, err := s.Job("big")
	require.NoError(t, err)
	require.Len(t, got.GetCancelReason(), 256<<10)
	require.False(t, s.Disk().Full)
}

func TestReadsCounted(t *testing.T) {
	s, _ := openTest(t)
	before := s.Reads()
	_, err := s.Job("nope")
	require.ErrorIs(t, err, ErrNotFound)
	require.Equal(t, before+1, s.Reads())
	require.NoError(t, s.CreateToken(token("aaaaaaaaaaaa")))
	require.Equal(t, before+1, s.Reads(), "a write is not a read")
}
