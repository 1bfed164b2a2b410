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

// DiskUsage returns the size of the file system holding dir and the bytes
// free to an unprivileged user on it.
func DiskUsage(dir string) (total, free uint64, err error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, 0, fmt.Errorf("statfs %s: %w", dir, err)
	}
	bs := st.Frsize
	if bs <= 0 {
		bs = st.Bsize
	}
	if bs <= 0 {
		return 0, 0, fmt.Errorf("statfs %s: no block size", dir)
	}
	return st.Blocks * uint64(bs), st.Bavail * uint64(bs), nil
}
