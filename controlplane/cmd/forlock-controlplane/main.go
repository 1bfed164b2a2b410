// Command forlock-controlplane runs the Forlock Fleet control plane.
package main

import (
	"os"

	"github.com/forlock/fleet/controlplane"
)

func main() { os.Exit(controlplane.Main(os.Args[1:], os.Stderr)) }
