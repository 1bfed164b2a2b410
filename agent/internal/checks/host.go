package checks

import (
	"context"
	"fmt"

	"github.com/forlock/fleet/agent/internal/hostinfo"
)

// HostChecks returns the checks of a host whose agent keeps its state in
// stateDir, in report order.
func HostChecks(stateDir string) []Check {
	return []Check{
		Disk{Dir: stateDir, Usage: hostinfo.DiskUsage},
		Memory{Read: hostinfo.Collector{}.Memory},
	}
}

// Disk checks the free space of the file system holding Dir (the agent's
// state directory, on the host's data disk).
type Disk struct {
	// Dir is a directory on the file system to check.
	Dir string
	// Usage reads the file system's size and free bytes.
	Usage func(dir string) (total, free uint64, err error)
}

// Name is "disk".
func (Disk) Name() string { return "disk" }

// Run reads the file system and judges it.
func (d Disk) Run(context.Context) Result {
	total, free, err := d.Usage(d.Dir)
	if err != nil {
		return Result{Name: d.Name(), Status: Unknown, Summary: fmt.Sprintf("cannot read the file system of %s: %v", d.Dir, err)}
	}
	return EvaluateDisk(total, free)
}

// Memory checks the machine's memory use.
type Memory struct {
	// Read reads the machine's memory.
	Read func() (hostinfo.Memory, error)
}

// Name is "memory".
func (Memory) Name() string { return "memory" }

// Run reads the memory figures and judges them.
func (m Memory) Run(context.Context) Result {
	mem, err := m.Read()
	if err != nil {
		return Result{Name: m.Name(), Status: Unknown, Summary: fmt.Sprintf("cannot read the memory figures: %v", err)}
	}
	if mem.Available == 0 {
		return Result{Name: m.Name(), Status: Unknown, Summary: "the kernel does not report MemAvailable"}
	}
	return EvaluateMemory(mem.Total, mem.Available)
}
