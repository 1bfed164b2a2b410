package dockerrt

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
)

// Stats is one resource sample of a running container.
type Stats struct {
	// CPUPercent is CPU use in percent of one core over the sample's
	// interval (as docker stats shows it: 250 means two and a half cores).
	CPUPercent float64
	// MemoryBytes is memory in use, page cache that can be dropped
	// excluded (as docker stats shows it).
	MemoryBytes uint64
	// MemoryLimitBytes is the container's memory limit, 0 if it has none.
	MemoryLimitBytes uint64
}

// maxStatsSize bounds a stats document; a real one is a few KiB.
const maxStatsSize = 1 << 20

// sample reads one non-streaming stats sample. The engine takes two CPU
// readings about a second apart so that the CPU figure is a rate.
func (r *Runtime) sample(ctx context.Context, id string, memLimit int64) (*Stats, error) {
	res, err := r.engine.ContainerStats(ctx, id, client.ContainerStatsOptions{IncludePreviousSample: true})
	if err != nil {
		return nil, fmt.Errorf("read stats: %w", err)
	}
	defer func() { _ = res.Body.Close() }()
	var s container.StatsResponse
	if err := json.NewDecoder(io.LimitReader(res.Body, maxStatsSize)).Decode(&s); err != nil {
		return nil, fmt.Errorf("decode stats: %w", err)
	}
	st := &Stats{CPUPercent: CPUPercent(s), MemoryBytes: MemoryUsage(s.MemoryStats)}
	if memLimit > 0 {
		st.MemoryLimitBytes = uint64(memLimit)
	}
	return st, nil
}

// CPUPercent computes CPU use from a sample with its previous reading, the
// way the docker CLI does: the container's share of the host's CPU time
// over the interval, times the number of online CPUs, in percent. It is 0
// without a previous reading.
func CPUPercent(s container.StatsResponse) float64 {
	cur, prev := s.CPUStats, s.PreCPUStats
	if cur.CPUUsage.TotalUsage <= prev.CPUUsage.TotalUsage || cur.SystemUsage <= prev.SystemUsage || prev.SystemUsage == 0 {
		return 0
	}
	cpuDelta := float64(cur.CPUUsage.TotalUsage - prev.CPUUsage.TotalUsage)
	sysDelta := float64(cur.SystemUsage - prev.SystemUsage)
	cpus := float64(cur.OnlineCPUs)
	if cpus == 0 {
		cpus = float64(len(cur.CPUUsage.PercpuUsage))
	}
	return cpuDelta / sysDelta * cpus * 100
}

// MemoryUsage is the memory in use without the inactive page cache, as the
// docker CLI computes it: cgroup v1 reports total_inactive_file, cgroup v2
// inactive_file.
func MemoryUsage(m container.MemoryStats) uint64 {
	if v, ok := m.Stats["total_inactive_file"]; ok && v < m.Usage {
		return m.Usage - v
	}
	if v := m.Stats["inactive_file"]; v < m.Usage {
		return m.Usage - v
	}
	return m.Usage
}
