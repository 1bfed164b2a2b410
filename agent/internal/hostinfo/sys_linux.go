package hostinfo

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// kernelRelease returns uname's release, e.g. "6.1.0-18-amd64".
func kernelRelease() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return ""
	}
	return unix.ByteSliceToString(u.Release[:])
}

// FileSystem is the file system holding a directory.
type FileSystem struct {
	// Total is its size and Free the bytes free to an unprivileged user,
	// both in bytes.
	Total, Free uint64
	// Device is the directory's device ID (st_dev): directories with the
	// same one are on the same file system.
	Device uint64
}

// StatFS reads the file system holding dir. An error wraps
// fs.ErrNotExist when dir does not exist.
func StatFS(dir string) (FileSystem, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return FileSystem{}, fmt.Errorf("statfs %s: %w", dir, err)
	}
	bs := st.Frsize
	if bs <= 0 {
		bs = st.Bsize
	}
	if bs <= 0 {
		return FileSystem{}, fmt.Errorf("statfs %s: no block size", dir)
	}
	var fi unix.Stat_t
	if err := unix.Stat(dir, &fi); err != nil {
		return FileSystem{}, fmt.Errorf("stat %s: %w", dir, err)
	}
	return FileSystem{Total: st.Blocks * uint64(bs), Free: st.Bavail * uint64(bs), Device: uint64(fi.Dev)}, nil //nolint:unconvert // Dev is uint32 on some architectures
}

// DiskUsage returns the size of the file system holding dir and the bytes
// free to an unprivileged user on it.
func DiskUsage(dir string) (total, free uint64, err error) {
	f, err := StatFS(dir)
	return f.Total, f.Free, err
}
