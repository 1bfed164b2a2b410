package checks

import (
	"context"
	"crypto/x509"
	"fmt"
	"sync"
	"time"

	"github.com/forlock/fleet/agent/internal/dockerrt"
)

// DefaultCheckTimeout bounds each check; the suite runs them concurrently,
// so a whole report takes at most about this long plus a little grace.
const DefaultCheckTimeout = 4 * time.Second

// overrunGrace is how long the suite waits past a check's timeout before
// it reports the check as hung and moves on.
const overrunGrace = 500 * time.Millisecond

// Suite is the node's set of health checks.
type Suite struct {
	// Host are the host's checks (HostChecks: disk, memory, cpu and the
	// other disks), reported first.
	Host []Check
	// Containers, if set, checks the expected containers, reported next.
	Containers *Containers
	// Services are the stack's checks (API, PostgreSQL, Redis), reported
	// next.
	Services []Check
	// Certificate, if set, checks the certificate nginx serves, reported
	// last; the certificate it reads goes into the report.
	Certificate *Certificate
	// Timeout bounds each check; zero means DefaultCheckTimeout.
	Timeout time.Duration
}

// Report is the outcome of one run of a Suite.
type Report struct {
	// CheckedAt is when the run started.
	CheckedAt time.Time
	// Results are the checks' results in report order.
	Results []Result
	// Containers are the containers the container check read.
	Containers []dockerrt.Container
	// Certificate is the certificate nginx served to the certificate
	// check; nil when there is no such check or its handshake failed.
	Certificate *x509.Certificate
}

// Run runs every check concurrently, each under the suite's timeout. A
// check that does not return within its timeout (plus a grace) is reported
// UNKNOWN and left to finish on its own.
func (s *Suite) Run(ctx context.Context) Report {
	timeout := s.Timeout
	if timeout <= 0 {
		timeout = DefaultCheckTimeout
	}
	rep := Report{CheckedAt: time.Now()}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	// One slot per check (the container check is one), in report order.
	type outcome struct {
		results []Result
		cs      []dockerrt.Container
		cert    *x509.Certificate
	}
	type slot struct {
		run      func() outcome
		fallback []Result // reported if the check does not finish
		done     bool
		out      outcome
	}
	var slots []*slot
	hung := fmt.Sprintf("the check did not finish within %s", timeout)
	addCheck := func(c Check) {
		slots = append(slots, &slot{
			run:      func() outcome { return outcome{results: []Result{c.Run(ctx)}} },
			fallback: []Result{{Name: c.Name(), Status: Unknown, Summary: hung}},
		})
	}
	for _, c := range s.Host {
		addCheck(c)
	}
	if s.Containers != nil {
		slots = append(slots, &slot{
			run: func() outcome {
				rs, cs := s.Containers.Run(ctx)
				return outcome{results: rs, cs: cs}
			},
			fallback: s.Containers.allUnknown(fmt.Sprintf("the Docker Engine did not answer within %s", timeout)),
		})
	}
	for _, c := range s.Services {
		addCheck(c)
	}
	if c := s.Certificate; c != nil {
		slots = append(slots, &slot{
			run: func() outcome {
				r, cert := c.Read(ctx)
				return outcome{results: []Result{r}, cert: cert}
			},
			fallback: []Result{{Name: c.Name(), Status: Unknown, Summary: hung}},
		})
	}

	var mu sync.Mutex
	remaining := len(slots)
	allDone := make(chan struct{})
	if remaining == 0 {
		close(allDone)
	}
	for _, sl := range slots {
		go func() {
			out := sl.run()
			mu.Lock()
			defer mu.Unlock()
			sl.done, sl.out = true, out
			if remaining--; remaining == 0 {
				close(allDone)
			}
		}()
	}
	hardStop := time.NewTimer(timeout + overrunGrace)
	defer hardStop.Stop()
	select {
	case <-allDone:
	case <-hardStop.C:
	}

	mu.Lock()
	defer mu.Unlock()
	for _, sl := range slots {
		if !sl.done {
			rep.Results = append(rep.Results, sl.fallback...)
			continue
		}
		rep.Results = append(rep.Results, sl.out.results...)
		rep.Containers = append(rep.Containers, sl.out.cs...)
		if sl.out.cert != nil {
			rep.Certificate = sl.out.cert
		}
	}
	return rep
}
