//go:build !linux

package hostinfo

// The agent runs on Linux; elsewhere (a developer's machine) these facts
// are left empty.

func kernelRelease() string { return "" }

func diskUsage(string) (total, free uint64) { return 0, 0 }
