package commands

import (
	"cmp"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"

	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// jobModel is a followed job with events applied to its tasks.
type jobModel struct {
	job *forlockv1.Job
}

func (m *jobModel) snapshot(j *forlockv1.Job) {
	m.job = proto.CloneOf(j)
}

func (m *jobModel) apply(ev *forlockv1.JobEvent) {
	if m.job == nil {
		m.job = &forlockv1.Job{}
	}
	if s := ev.GetJobState(); s != forlockv1.JobState_JOB_STATE_UNSPECIFIED {
		m.job.State = s
	}
	if ev.GetTaskId() == "" {
		return
	}
	i := slices.IndexFunc(m.job.GetTasks(), func(t *forlockv1.Task) bool { return t.GetId() == ev.GetTaskId() })
	if i < 0 {
		m.job.Tasks = append(m.job.Tasks, &forlockv1.Task{Id: ev.GetTaskId(), NodeName: ev.GetNodeName()})
		i = len(m.job.Tasks) - 1
	}
	t := m.job.Tasks[i]
	if s := ev.GetTaskState(); s != forlockv1.TaskState_TASK_STATE_UNSPECIFIED {
		t.State = s
	}
	if ev.GetProgress() != nil {
		t.Progress = ev.GetProgress()
	}
	if ev.GetMessage() != "" {
		t.Message = ev.GetMessage()
	}
}

// lineView prints one line per event, for logs and pipes. Notes about
// broken watches go to errW so that out holds only the job's story.
type lineView struct {
	out, errW io.Writer
	id        string
	started   bool
}

func (v *lineView) snapshot(j *forlockv1.Job) {
	if v.started {
		return // a re-watch: the events continue where they stopped
	}
	v.started = true
	fmt.Fprintf(v.out, "job %s %s on %d nodes: %s, tasks ok/failed/skipped/total %s\n",
		j.GetId(), orDash(j.GetKind()), len(j.GetTasks()), jobStateName(j.GetState()), countTasks(j.GetTasks()))
}

func (v *lineView) event(ev *forlockv1.JobEvent) {
	fmt.Fprintln(v.out, eventLine(ev))
}

func (v *lineView) retrying(err error, wait time.Duration) {
	fmt.Fprintf(v.errW, "forlockctl: watch of job %s broke (%v); watching again in %s\n", v.id, err, wait)
}

// ttyView redraws a compact per-node block in place on a terminal, at most
// ten times a second.
type ttyView struct {
	out  io.Writer
	size func() (width, height int)

	mu     sync.Mutex
	model  jobModel
	note   string // why the watch is being retried, until the next message
	dirty  bool
	drawn  int // lines of the block on screen
	stopCh chan struct{}
	done   chan struct{}
}

const redrawEvery = 100 * time.Millisecond

func newTTYView(out io.Writer, size func() (int, int)) *ttyView {
	v := &ttyView{out: out, size: size, stopCh: make(chan struct{}), done: make(chan struct{})}
	go v.loop()
	return v
}

func (v *ttyView) loop() {
	defer close(v.done)
	t := time.NewTicker(redrawEvery)
	defer t.Stop()
	for {
		select {
		case <-v.stopCh:
			return
		case <-t.C:
			v.mu.Lock()
			if v.dirty {
				v.draw()
			}
			v.mu.Unlock()
		}
	}
}

func (v *ttyView) snapshot(j *forlockv1.Job) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.model.snapshot(j)
	v.note, v.dirty = "", true
}

func (v *ttyView) event(ev *forlockv1.JobEvent) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.model.apply(ev)
	v.note, v.dirty = "", true
}

func (v *ttyView) retrying(err error, wait time.Duration) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.note = fmt.Sprintf("watch broke (%v); watching again in %s", err, wait)
	v.dirty = true
}

// stop ends the redraws. With erase the block is cleared (the final table
// follows); otherwise its latest state stays on screen.
func (v *ttyView) stop(erase bool) {
	close(v.stopCh)
	<-v.done
	v.mu.Lock()
	defer v.mu.Unlock()
	if erase {
		v.clear()
		return
	}
	if v.dirty {
		v.draw()
	}
}

// clear moves to the first line of the block and erases to the end of the
// screen.
func (v *ttyView) clear() {
	if v.drawn > 0 {
		fmt.Fprintf(v.out, "\r\x1b[%dA\x1b[J", v.drawn)
	}
	v.drawn = 0
}

func (v *ttyView) draw() {
	w, h := v.size()
	lines := statusBlock(v.model.job, max(h-2, 4))
	if v.note != "" {
		lines = append(lines, "("+v.note+")")
	}
	var b strings.Builder
	if v.drawn > 0 {
		fmt.Fprintf(&b, "\r\x1b[%dA\x1b[J", v.drawn)
	}
	for _, l := range lines {
		b.WriteString(truncate(l, w-1))
		b.WriteByte('\n')
	}
	_, _ = io.WriteString(v.out, b.String())
	v.drawn, v.dirty = len(lines), false
}

// statusBlock renders a job as a header line and up to maxLines-1 more:
// one per task (node, state, progress, message). When the tasks do not fit,
// active ones come first, then failed, then queued, and a last line counts
// the rest.
func statusBlock(j *forlockv1.Job, maxLines int) []string {
	if j == nil {
		return []string{"waiting for the job's first snapshot..."}
	}
	tasks := j.GetTasks()
	lines := []string{fmt.Sprintf("job %s %s: %s, tasks ok/failed/skipped/total %s",
		j.GetId(), orDash(j.GetKind()), jobStateName(j.GetState()), countTasks(tasks))}
	show := tasks
	var rest []*forlockv1.Task
	if len(tasks) > maxLines-1 {
		order := slices.Clone(tasks)
		slices.SortStableFunc(order, func(a, b *forlockv1.Task) int { return cmp.Compare(showRank(a), showRank(b)) })
		keep := max(maxLines-2, 1)
		show, rest = order[:keep], order[keep:]
		slices.SortStableFunc(show, func(a, b *forlockv1.Task) int {
			return cmp.Compare(slices.Index(tasks, a), slices.Index(tasks, b))
		})
	}
	width := 0
	for _, t := range show {
		width = max(width, utf8.RuneCountInString(t.GetNodeName()))
	}
	for _, t := range show {
		line := fmt.Sprintf("  %-*s  %-11s", width, t.GetNodeName(), taskStateName(t.GetState()))
		for _, s := range []string{progressString(t.GetProgress()), oneLine(t.GetMessage())} {
			if s != "" {
				line += "  " + s
			}
		}
		lines = append(lines, strings.TrimRight(line, " "))
	}
	if len(rest) > 0 {
		lines = append(lines, fmt.Sprintf("  ... and %d more: %s", len(rest), stateTally(rest)))
	}
	return lines
}

// showRank orders tasks for a block too small for all: lower shows first.
func showRank(t *forlockv1.Task) int {
	switch t.GetState() {
	case forlockv1.TaskState_TASK_STATE_RUNNING, forlockv1.TaskState_TASK_STATE_DISPATCHED:
		return 0
	case forlockv1.TaskState_TASK_STATE_FAILED, forlockv1.TaskState_TASK_STATE_INTERRUPTED, forlockv1.TaskState_TASK_STATE_ROLLED_BACK,
		forlockv1.TaskState_TASK_STATE_UNKNOWN:
		return 1
	case forlockv1.TaskState_TASK_STATE_QUEUED:
		return 2
	}
	return 3
}

// stateTally counts tasks by state: "queued 40, succeeded 5".
func stateTally(tasks []*forlockv1.Task) string {
	counts := map[forlockv1.TaskState]int{}
	for _, t := range tasks {
		counts[t.GetState()]++
	}
	var parts []string
	for _, s := range slices.Sorted(maps.Keys(counts)) {
		parts = append(parts, fmt.Sprintf("%s %d", taskStateName(s), counts[s]))
	}
	return strings.Join(parts, ", ")
}

// truncate cuts s to at most n runes, so no line wraps and the redraw
// knows how many lines it wrote.
func truncate(s string, n int) string {
	if n <= 0 || utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}
