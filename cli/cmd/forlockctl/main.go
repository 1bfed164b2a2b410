// Command forlockctl operates a Forlock Fleet through the control plane's
// public gRPC API.
package main

import (
	"os"

	"github.com/forlock/fleet/cli/internal/commands"
)

func main() {
	os.Exit(commands.Execute())
}
