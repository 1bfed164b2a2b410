// Command forlock-agent is the per-host agent of Forlock Fleet; see package
// agent.
package main

import (
	"os"

	"github.com/forlock/fleet/agent"
)

func main() { os.Exit(agent.Main(os.Args[1:])) }
