// Command testagent is forlock-agent with its health_check handler slowed
// down by FORLOCK_TEST_TASK_DELAY (a Go duration), so end-to-end tests can
// kill a process in the middle of a task. Only the tests build it.
package main

import (
	"context"
	"os"
	"time"

	"github.com/forlock/fleet/agent"
	"github.com/forlock/fleet/internal/protocol"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

type slow struct{ delay time.Duration }

func (s slow) Run(ctx context.Context, _ agent.TaskAssignment, report func(*forlockv1.Progress)) (agent.TaskResult, error) {
	report(&forlockv1.Progress{Phase: "waiting", Message: "test delay " + s.delay.String()})
	select {
	case <-time.After(s.delay):
		return agent.TaskResult{Message: "done after " + s.delay.String()}, nil
	case <-ctx.Done():
		return agent.TaskResult{}, ctx.Err()
	}
}

func main() {
	d, err := time.ParseDuration(os.Getenv("FORLOCK_TEST_TASK_DELAY"))
	if err != nil {
		d = time.Second
	}
	os.Exit(agent.MainWithHandlers(os.Args[1:], map[protocol.Kind]agent.TaskHandler{protocol.KindHealthCheck: slow{delay: d}}))
}
