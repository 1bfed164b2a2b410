package jobs

import (
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"

	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// Limits bound what agents' progress reports cost the control plane. An
// agent may report progress as often as it likes: the task's live progress
// (what GetJob shows) follows every report, but the job's stored history
// keeps at most one progress event per task per ProgressInterval, and once
// a job has EventsPerJob + EventsPerTask*tasks events, only one progress
// event in SampleEvery. State transitions are always kept, so a job's
// history stays readable and its size bounded whatever an agent sends.
type Limits struct {
	// ProgressInterval is the least time between two stored progress
	// events of one task. Default 1s.
	ProgressInterval time.Duration
	// ProgressMessageMax caps a progress message in bytes (cut on a rune
	// boundary). Default 512.
	ProgressMessageMax int
	// EventsPerJob and EventsPerTask make a job's event cap. Defaults 1000
	// and 20.
	EventsPerJob, EventsPerTask int
	// SampleEvery: past the cap, one progress event in SampleEvery is
	// stored. Default 100.
	SampleEvery int
}

// Defaults of Limits.
const (
	DefaultProgressInterval   = time.Second
	DefaultProgressMessageMax = 512
	DefaultEventsPerJob       = 1000
	DefaultEventsPerTask      = 20
	DefaultSampleEvery        = 100
)

// WithDefaults fills unset limits with their defaults.
func (l Limits) WithDefaults() Limits {
	if l.ProgressInterval <= 0 {
		l.ProgressInterval = DefaultProgressInterval
	}
	if l.ProgressMessageMax <= 0 {
		l.ProgressMessageMax = DefaultProgressMessageMax
	}
	if l.EventsPerJob <= 0 {
		l.EventsPerJob = DefaultEventsPerJob
	}
	if l.EventsPerTask <= 0 {
		l.EventsPerTask = DefaultEventsPerTask
	}
	if l.SampleEvery <= 0 {
		l.SampleEvery = DefaultSampleEvery
	}
	return l
}

func (l Limits) eventCap(tasks int) int { return l.EventsPerJob + l.EventsPerTask*tasks }

// progress takes a running task's progress report. Callers hold e.mu.
func (e *Engine) progress(j *job, t *forlockv1.Task, p *forlockv1.Progress) {
	p = proto.CloneOf(p)
	p.Message = truncate(p.GetMessage(), e.limits.ProgressMessageMax)
	t.Progress = p
	if e.diskFull {
		return // nothing new to store while commits fail: the retry batch stays bounded
	}
	now := time.Now()
	if last, ok := j.progressAt[t.GetId()]; ok && now.Sub(last) < e.limits.ProgressInterval {
		return
	}
	j.progressAt[t.GetId()] = now
	if len(j.events) >= e.limits.eventCap(len(j.tasks)) {
		j.sampled++
		if j.sampled%e.limits.SampleEvery != 0 {
			return
		}
	}
	e.record(j, t, p.GetMessage(), p)
}

// truncate cuts s to at most n bytes without splitting a UTF-8 sequence.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
