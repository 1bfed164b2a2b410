package checks

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/forlock/fleet/agent/internal/dockerrt"
)

// ContainerLister reads the node's containers; *dockerrt.Runtime is one.
type ContainerLister interface {
	Containers(ctx context.Context) ([]dockerrt.Container, error)
	Describe() string
}

// Containers checks that each expected container of the Forlock stack is
// running, and healthy if it has a healthcheck: one result per container,
// named "container/<name>".
type Containers struct {
	// Lister reads the containers; nil when Docker is not configured.
	Lister ContainerLister
	// Expected names the expected containers, for the results when the
	// engine cannot be read.
	Expected []string
	// Unconfigured says what to configure when Lister is nil.
	Unconfigured string
}

// Run reads the containers and judges each; it returns the results and
// the containers read.
func (c Containers) Run(ctx context.Context) ([]Result, []dockerrt.Container) {
	if c.Lister == nil {
		msg := c.Unconfigured
		if msg == "" {
			msg = "Docker is not configured: set docker_host"
		}
		return c.allUnknown(msg), nil
	}
	cs, err := c.Lister.Containers(ctx)
	if err != nil {
		return c.allUnknown(fmt.Sprintf("cannot read the containers: %v: set docker_host if the engine listens elsewhere", err)), nil
	}
	now := time.Now()
	results := make([]Result, len(cs))
	for i, ct := range cs {
		results[i] = EvaluateContainer(ct, c.Lister.Describe(), now)
	}
	return results, cs
}

func (c Containers) allUnknown(msg string) []Result {
	rs := make([]Result, len(c.Expected))
	for i, n := range c.Expected {
		rs[i] = Result{Name: "container/" + n, Status: Unknown, Summary: msg}
	}
	return rs
}

// EvaluateContainer judges one container at time now: CRITICAL when it is
// missing, not running or unhealthy; WARN while its healthcheck is still
// starting; else OK. how says how containers are found, for the message
// about a missing one.
func EvaluateContainer(c dockerrt.Container, how string, now time.Time) Result {
	r := Result{Name: "container/" + c.Expected}
	if !c.Found {
		r.Status, r.Summary = Critical, fmt.Sprintf("missing: no container matches it (found by %s)", how)
		return r
	}
	var parts []string
	switch {
	case c.State != "running":
		r.Status = Critical
		s := c.State
		if c.State == "exited" || c.State == "dead" {
			s += fmt.Sprintf(" (exit code %d)", c.ExitCode)
		}
		parts = append(parts, s)
	case c.Health == "unhealthy":
		r.Status = Critical
		parts = append(parts, "running but unhealthy")
	case c.Health == "starting":
		r.Status = Warn
		parts = append(parts, "running, health check starting")
	default:
		s := "running"
		if !c.StartedAt.IsZero() {
			s += " for " + Uptime(now.Sub(c.StartedAt))
		}
		if c.Health != "" {
			s += ", " + c.Health
		}
		parts = append(parts, s)
	}
	if c.Name != c.Expected {
		parts = append(parts, "container "+c.Name)
	}
	if c.RestartCount > 0 {
		parts = append(parts, fmt.Sprintf("%d restarts", c.RestartCount))
	}
	if c.Stats != nil {
		mem := Bytes(c.Stats.MemoryBytes)
		if c.Stats.MemoryLimitBytes > 0 {
			mem += " of " + Bytes(c.Stats.MemoryLimitBytes)
		}
		parts = append(parts, fmt.Sprintf("CPU %.1f%%, memory %s", c.Stats.CPUPercent, mem))
	}
	r.Summary = strings.Join(parts, ", ")
	return r
}

// Uptime formats a duration coarsely: "45s", "12m", "3h12m", "4d3h".
func Uptime(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", max(int(d.Seconds()), 0))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 24*time.Hour:
		return fmt.Sprintf("%dh%dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd%dh", int(d.Hours())/24, int(d.Hours())%24)
}
