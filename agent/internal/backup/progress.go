package backup

import (
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// progress reports a task's phase and bytes every ProgressInterval until
// stopped.
type progress struct {
	report func(*forlockv1.Progress)

	mu      sync.Mutex
	phase   string
	percent uint32
	base    int64        // bytes of the finished steps
	current func() int64 // bytes of the running step, nil between steps

	stopOnce sync.Once
	done     chan struct{}
	wg       sync.WaitGroup
}

func startProgress(report func(*forlockv1.Progress)) *progress {
	p := &progress{report: report, done: make(chan struct{})}
	p.wg.Go(func() {
		t := time.NewTicker(ProgressInterval)
		defer t.Stop()
		for {
			select {
			case <-p.done:
				return
			case <-t.C:
				p.send()
			}
		}
	})
	return p
}

// step starts a phase whose bytes so far current returns.
func (p *progress) step(phase string, percent uint32, current func() int64) {
	p.mu.Lock()
	p.phase, p.percent, p.current = phase, percent, current
	p.mu.Unlock()
	p.send()
}

// finish adds the step's bytes to the total.
func (p *progress) finish(n int64) {
	p.mu.Lock()
	p.base += n
	p.current = nil
	p.mu.Unlock()
}

func (p *progress) send() {
	p.mu.Lock()
	done := p.base
	if p.current != nil {
		done += p.current()
	}
	msg := &forlockv1.Progress{Phase: p.phase, Percent: p.percent, BytesDone: uint64(max(done, 0))} //nolint:gosec // not negative
	p.mu.Unlock()
	p.report(msg)
}

func (p *progress) stop() {
	p.stopOnce.Do(func() { close(p.done) })
	p.wg.Wait()
}

// counter counts the bytes passing through; safe to read concurrently.
type counter struct{ n atomic.Int64 }

func (c *counter) add(n int) { c.n.Add(int64(n)) }

func (c *counter) load() int64 { return c.n.Load() }

// humanBytes formats n as "12.3 MiB".
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// countingWriter counts what it passes on.
type countingWriter struct {
	w io.Writer
	c *counter
}

func (cw countingWriter) Write(p []byte) (int, error) {
	n, err := cw.w.Write(p)
	cw.c.add(n)
	return n, err
}

// countingReader counts what is read through it.
type countingReader struct {
	r io.Reader
	c *counter
}

func (cr countingReader) Read(p []byte) (int, error) {
	n, err := cr.r.Read(p)
	cr.c.add(n)
	return n, err
}
