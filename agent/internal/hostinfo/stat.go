package hostinfo

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"strconv"
)

// CPUTimes are the host's cumulative CPU times since boot, summed over all
// CPUs, in clock ticks (USER_HZ), as the "cpu" line of /proc/stat reports
// them. Only differences between two readings mean anything.
type CPUTimes struct {
	// Idle is idle plus iowait: time no task ran.
	Idle uint64
	// Total is user, nice, system, idle, iowait, irq, softirq and steal.
	// guest and guest_nice are left out: the kernel already counts them in
	// user and nice.
	Total uint64
}

// ParseStat reads the aggregate "cpu" line of /proc/stat:
//
//	cpu  user nice system idle iowait irq softirq steal guest guest_nice
//
// Kernels before 2.6.11 print fewer columns; at least user, nice, system and
// idle are required, and missing later columns count as zero.
func ParseStat(data []byte) (CPUTimes, error) {
	for len(data) > 0 {
		var line []byte
		line, data, _ = bytes.Cut(data, []byte("\n"))
		fields := bytes.Fields(line)
		if len(fields) == 0 || string(fields[0]) != "cpu" {
			continue
		}
		return parseCPULine(fields[1:])
	}
	return CPUTimes{}, errors.New("stat: no cpu line")
}

func parseCPULine(fields [][]byte) (CPUTimes, error) {
	const (
		idle, iowait = 3, 4
		counted      = 8 // user .. steal
	)
	if len(fields) < 4 {
		return CPUTimes{}, fmt.Errorf("stat: cpu line has %d values, want at least 4", len(fields))
	}
	var t CPUTimes
	for i, f := range fields[:min(len(fields), counted)] {
		v, err := strconv.ParseUint(string(f), 10, 64)
		if err != nil {
			return CPUTimes{}, fmt.Errorf("stat: cpu value %d: %w", i+1, err)
		}
		var carry uint64
		if t.Total, carry = bits.Add64(t.Total, v, 0); carry != 0 || t.Total > math.MaxInt64 {
			return CPUTimes{}, errors.New("stat: cpu times overflow")
		}
		if i == idle || i == iowait {
			t.Idle += v // at most Total: no overflow
		}
	}
	return t, nil
}
