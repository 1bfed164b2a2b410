package checks

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/forlock/fleet/agent/internal/hostinfo"
)

// HostConfig says where a host's checks look.
type HostConfig struct {
	// StateDir is the agent's state directory (check "disk").
	StateDir string
	// DockerRoot, if set, asks the Docker Engine for its data root (check
	// "disk/docker"); nil reports that check UNKNOWN with DockerMissing.
	DockerRoot func(ctx context.Context) (string, error)
	// DockerMissing says what to configure when DockerRoot is nil.
	DockerMissing string
	// BackupDirs are the backup directories (check "disk/backup"); none
	// leaves the check out.
	BackupDirs []string
	// WALArchiveDir is the WAL archive's directory (check
	// "disk/wal-archive"); empty leaves the check out.
	WALArchiveDir string
}

// HostChecks returns the host's checks, in report order: disk, memory,
// cpu, disk/docker, disk/backup, disk/wal-archive. The directories'
// file systems are read by statfs; each disk check after the first names
// but does not judge again a file system an earlier one judges.
func HostChecks(cfg HostConfig) []Check {
	state := []JudgedDir{{Check: DiskState, Dir: cfg.StateDir}}
	docker := Disk{Check: DiskDocker, Setting: "Docker's data root", Locate: cfg.DockerRoot, Judged: state, StatFS: hostinfo.StatFS}
	if docker.Locate == nil {
		docker.Locate = func(context.Context) (string, error) { return "", errors.New(cfg.DockerMissing) }
	}
	cs := []Check{
		Disk{Check: DiskState, Setting: "state_dir", Dirs: []string{cfg.StateDir}, StatFS: hostinfo.StatFS},
		Memory{Read: hostinfo.Collector{}.Memory},
		NewCPU(hostinfo.Collector{}.CPUTimes),
		docker,
	}
	if len(cfg.BackupDirs) > 0 {
		cs = append(cs, Disk{Check: DiskBackup, Setting: "backup_dirs", Dirs: cfg.BackupDirs, Judged: state, StatFS: hostinfo.StatFS})
	}
	if cfg.WALArchiveDir != "" {
		judged := slices.Clone(state)
		for _, d := range cfg.BackupDirs {
			judged = append(judged, JudgedDir{Check: DiskBackup, Dir: d})
		}
		cs = append(cs, Disk{Check: DiskWALArchive, Setting: "wal_archive_dir", Dirs: []string{cfg.WALArchiveDir}, Judged: judged, StatFS: hostinfo.StatFS})
	}
	return cs
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
