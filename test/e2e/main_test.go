// Package e2e holds the end-to-end tests: a fleet of real agents against a
// real control plane, in-process and as separate processes of the built
// binaries. Nothing is mocked: TLS, gRPC, bbolt and the processes are real.
package e2e

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"go.uber.org/goleak"
)

// binDir holds the binaries built once for the real-process tests.
var binDir string

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	flag.Parse()
	if testing.Short() {
		// End-to-end tests start whole control planes, agents and test
		// nodes: none of them is a unit test.
		fmt.Println("test/e2e: skipped under -short (end-to-end tests)")
		return 0
	}
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
	defer func() {
		if plain.dir != "" {
			_ = os.RemoveAll(plain.dir)
		}
	}()
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goroutine leak:", err)
			return 1
		}
	}
	return code
}

// plain holds the binaries built without -race, for the tests that compare
// timings and memory (the race detector multiplies both).
var plain struct {
	once sync.Once
	dir  string
	err  error
}

// plainBinaries builds the binaries without -race once (the build cache
// makes it cheap after the first time) and returns their directory.
func plainBinaries(t *testing.T) string {
	t.Helper()
	plain.once.Do(func() {
		plain.dir, plain.err = os.MkdirTemp("", "forlock-e2e-plain-")
		if plain.err != nil {
			return
		}
		cmd := exec.Command("go", "build", "-o", plain.dir+string(filepath.Separator),
			"./controlplane/cmd/forlock-controlplane", "./agent/cmd/forlock-agent", "./cli/cmd/forlockctl", "./test/e2e/testagent", "./test/e2e/attacker")
		cmd.Dir = filepath.Join("..", "..")
		out, err := cmd.CombinedOutput()
		if err != nil {
			plain.err = fmt.Errorf("go build without -race: %w: %s", err, out)
		}
	})
	if plain.err != nil {
		t.Fatal(plain.err)
	}
	return plain.dir
}
