package controlplane

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Limits bound what a full disk and hostile or broken agents can cost the
// control plane. Zero values mean the defaults.
type Limits struct {
	// DiskReserve is the free space the data dir's file system must keep:
	// below it writes (submits, token changes, node removal, cancels) are
	// refused with "control plane data disk is full" while reads and
	// heartbeats go on. Default 64 MiB; negative keeps no reserve.
	DiskReserve int64
	// ProgressEventInterval is the least time between two stored progress
	// events of one task (default 1s); ProgressMessageMax caps a progress
	// message in bytes (default 512).
	ProgressEventInterval time.Duration
	ProgressMessageMax    int
	// JobEventsMax + JobEventsPerTask * tasks is a job's event cap (default
	// 1000 + 20 per task); past it one progress event in
	// JobEventsSampleEvery (default 100) is stored. State changes are
	// always stored.
	JobEventsMax, JobEventsPerTask, JobEventsSampleEvery int
	// AgentControlRate is the heartbeats, pings and pongs a second one
	// agent stream may send (default max(10, 5 per heartbeat interval)),
	// AgentControlBurst how many at once (default twice the rate, at least
	// 20). The excess is dropped; a sustained flood closes the stream.
	AgentControlRate  float64
	AgentControlBurst int
}

func (l Limits) validate() error {
	switch {
	case l.ProgressEventInterval < 0 || l.ProgressEventInterval > time.Hour:
		return fmt.Errorf("progress event interval %s: give 0 (default 1s) to 1h", l.ProgressEventInterval)
	case l.ProgressMessageMax < 0 || l.ProgressMessageMax > 4096:
		return fmt.Errorf("progress message max %d: give 0 (default 512) to 4096 bytes", l.ProgressMessageMax)
	case l.JobEventsMax < 0 || l.JobEventsPerTask < 0 || l.JobEventsSampleEvery < 0:
		return fmt.Errorf("job event limits must not be negative")
	case l.AgentControlRate < 0 || l.AgentControlBurst < 0:
		return fmt.Errorf("agent control rate and burst must not be negative")
	}
	return nil
}

// FileLimits is the limits section of the config file.
type FileLimits struct {
	// DiskReserve is a size: "64MiB", "512KiB", "1GiB", bytes, or "0" for
	// none.
	DiskReserve           string  `yaml:"disk_reserve"`
	ProgressEventInterval string  `yaml:"progress_event_interval"`
	ProgressMessageMax    int     `yaml:"progress_message_max"`
	JobEventsMax          int     `yaml:"job_events_max"`
	JobEventsPerTask      int     `yaml:"job_events_per_task"`
	JobEventsSampleEvery  int     `yaml:"job_events_sample_every"`
	AgentControlRate      float64 `yaml:"agent_control_rate"`
	AgentControlBurst     int     `yaml:"agent_control_burst"`
}

func (f FileLimits) limits() (Limits, error) {
	l := Limits{ProgressMessageMax: f.ProgressMessageMax, JobEventsMax: f.JobEventsMax, JobEventsPerTask: f.JobEventsPerTask,
		JobEventsSampleEvery: f.JobEventsSampleEvery, AgentControlRate: f.AgentControlRate, AgentControlBurst: f.AgentControlBurst}
	var err error
	if l.DiskReserve, err = parseReserve(f.DiskReserve); err != nil {
		return l, err
	}
	if f.ProgressEventInterval != "" {
		if l.ProgressEventInterval, err = time.ParseDuration(f.ProgressEventInterval); err != nil {
			return l, fmt.Errorf("limits progress_event_interval %q: want a duration such as 1s", f.ProgressEventInterval)
		}
	}
	return l, l.validate()
}

// parseReserve parses a disk reserve: "" is the default (0), "0" none (-1).
func parseReserve(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	n, err := parseBytes(s)
	if err != nil {
		return 0, fmt.Errorf("disk reserve: %w", err)
	}
	if n == 0 {
		return -1, nil
	}
	return n, nil
}

// parseBytes parses "64MiB", "512KiB", "2GiB" or a plain byte count.
func parseBytes(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}}
	num, mult := strings.TrimSpace(s), int64(1)
	for _, u := range units {
		if v, ok := strings.CutSuffix(num, u.suffix); ok {
			num, mult = strings.TrimSpace(v), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 || n > (1<<50)/mult {
		return 0, fmt.Errorf("size %q: want bytes or a number with KiB, MiB or GiB, e.g. 64MiB", s)
	}
	return n * mult, nil
}
