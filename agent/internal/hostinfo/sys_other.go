//go:build !linux

package hostinfo

import "errors"

// The agent runs on Linux; elsewhere (a developer's machine) these facts
// are left empty.

func kernelRelease() string { return "" }

// DiskUsage is not implemented here.
func DiskUsage(string) (total, free uint64, err error) {
	return 0, 0, errors.New("disk usage is only read on Linux")
}
