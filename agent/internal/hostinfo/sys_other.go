//go:build !linux

package hostinfo

import "errors"

// The agent runs on Linux; elsewhere (a developer's machine) these facts
// are left empty.

func kernelRelease() string { return "" }

// FileSystem is the file system holding a directory.
type FileSystem struct {
	Total, Free, Device uint64
}

// StatFS is not implemented here.
func StatFS(string) (FileSystem, error) {
	return FileSystem{}, errors.New("file systems are only read on Linux")
}

// DiskUsage is not implemented here.
func DiskUsage(string) (total, free uint64, err error) {
	return 0, 0, errors.New("disk usage is only read on Linux")
}
