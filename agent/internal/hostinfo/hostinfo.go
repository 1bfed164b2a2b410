// Package hostinfo collects the facts an agent reports about its host:
// host name, operating system, kernel, architecture, uptime, the disk space
// of the agent's state directory, the memory of the machine and its
// cumulative CPU times (for the health checks' CPU use).
//
// Reading is split from parsing: the parsers of /etc/os-release,
// /proc/uptime, /proc/meminfo and /proc/stat are pure functions (and
// fuzzed), the
// collector only reads files and calls the system.
package hostinfo

import (
	"io"
	"os"
	"path/filepath"
	"runtime"

	"google.golang.org/protobuf/types/known/durationpb"

	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// maxProcFile bounds what is read from any file here; the real ones are a
// few kilobytes.
const maxProcFile = 64 << 10

// Collector gathers host facts. The zero value reads the real system; tests
// may point Root at a directory tree holding etc/os-release and proc/.
type Collector struct {
	// StateDir is the directory whose file system's size is reported.
	StateDir string
	// AgentVersion is reported as is.
	AgentVersion string
	// Root prefixes the paths of /etc and /proc; empty means "/".
	Root string
}

// Collect returns the facts it could gather. A fact that cannot be read is
// left at its zero value: facts are informational and must never stop a
// heartbeat.
func (c Collector) Collect() *forlockv1.HostFacts {
	f := &forlockv1.HostFacts{
		Arch:         runtime.GOARCH,
		AgentVersion: c.AgentVersion,
		Kernel:       kernelRelease(),
	}
	if h, err := os.Hostname(); err == nil {
		f.Hostname = h
	}
	for _, p := range []string{"etc/os-release", "usr/lib/os-release"} {
		if data, err := c.read(p); err == nil {
			f.Os = ParseOSRelease(data)
			break
		}
	}
	if data, err := c.read("proc/uptime"); err == nil {
		if up, err := ParseUptime(data); err == nil {
			f.Uptime = durationpb.New(up)
		}
	}
	if m, err := c.Memory(); err == nil {
		f.MemoryTotalBytes, f.MemoryAvailableBytes = m.Total, m.Available
	}
	if c.StateDir != "" {
		f.DiskTotalBytes, f.DiskFreeBytes, _ = DiskUsage(c.StateDir)
	}
	return f
}

// Memory reads the machine's memory from /proc/meminfo.
func (c Collector) Memory() (Memory, error) {
	data, err := c.read("proc/meminfo")
	if err != nil {
		return Memory{}, err
	}
	return ParseMeminfo(data)
}

func (c Collector) read(rel string) ([]byte, error) {
	root := c.Root
	if root == "" {
		root = "/"
	}
	fh, err := os.Open(filepath.Join(root, rel))
	if err != nil {
		return nil, err
	}
	defer func() { _ = fh.Close() }()
	return io.ReadAll(io.LimitReader(fh, maxProcFile))
}

// CPUTimes reads the host's cumulative CPU times from /proc/stat.
func (c Collector) CPUTimes() (CPUTimes, error) {
	data, err := c.read("proc/stat")
	if err != nil {
		return CPUTimes{}, err
	}
	return ParseStat(data)
}
