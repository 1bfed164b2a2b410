// Package e2e holds the end-to-end tests: a fleet of real agents against a
// real control plane, in-process and as separate processes of the built
// binaries. Nothing is mocked: TLS, gRPC, bbolt and the processes are real.
package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"go.uber.org/goleak"
)

// binDir holds the binaries built once for the real-process tests.
var binDir string

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "forlock-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = os.RemoveAll(dir) }()
	binDir = dir
	cmd := exec.Command("go", "build", "-race", "-o", dir+string(filepath.Separator),
		"./controlplane/cmd/forlock-controlplane", "./agent/cmd/forlock-agent", "./cli/cmd/forlockctl", "./test/e2e/testagent")
	cmd.Dir = filepath.Join("..", "..")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building the binaries:", err)
		return 1
	}
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goroutine leak:", err)
			return 1
		}
	}
	return code
}
