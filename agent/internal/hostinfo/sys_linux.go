package hostinfo

import "golang.org/x/sys/unix"

// kernelRelease returns uname's release, e.g. "6.1.0-18-amd64".
func kernelRelease() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return ""
	}
	return unix.ByteSliceToString(u.Release[:])
}

// diskUsage returns the size of the file system holding dir and the bytes
// free to an unprivileged user on it.
func diskUsage(dir string) (total, free uint64) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, 0
	}
	bs := st.Frsize
	if bs <= 0 {
		bs = st.Bsize
	}
	if bs <= 0 {
		return 0, 0
	}
	return st.Blocks * uint64(bs), st.Bavail * uint64(bs)
}
