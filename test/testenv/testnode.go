package testenv

import (
	"crypto/rand"
	"encoding/hex"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestNode is a Forlock test node (deploy/testnode) on the local Docker
// Engine: containers Name-api, Name-postgres, Name-redis and Name-nginx.
type TestNode struct {
	// Name is the compose project and the containers' prefix.
	Name string
	// URL is the node's HTTPS address through nginx on loopback.
	URL string
	// RedisAddr is Redis published on loopback, HOST:PORT.
	RedisAddr string
}

// Containers are the node's container names, api first.
func (n TestNode) Containers() []string {
	return []string{n.Name + "-api", n.Name + "-postgres", n.Name + "-redis", n.Name + "-nginx"}
}

// testnodeDir is deploy/testnode of this repository.
func testnodeDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "deploy", "testnode")
}

// UpTestNode starts a test node named prefix-<random> with up.sh (env adds
// to its environment, e.g. API_REPO), waits until it is healthy, and
// removes it with its volumes when the test ends. Under -short it skips;
// without the images it fails naming the command that builds them.
func UpTestNode(tb testing.TB, prefix string, env ...string) TestNode {
	tb.Helper()
	RequireImage(tb, "forlock-test/api", "forlock-test/postgres", "forlock-test/redis", "forlock-test/nginx")
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	n := TestNode{Name: prefix + "-" + hex.EncodeToString(b)}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("pick a Redis port: %v", err)
	}
	n.RedisAddr = l.Addr().String()
	_ = l.Close()
	_, rport, _ := net.SplitHostPort(n.RedisAddr)

	dir := testnodeDir()
	up := exec.Command("bash", filepath.Join(dir, "up.sh"), n.Name)
	up.Env = append(append(os.Environ(), "REDIS_PORT="+rport), env...)
	var stderr strings.Builder
	up.Stderr = &stderr
	out, err := up.Output()
	tb.Cleanup(func() { _ = exec.Command("bash", filepath.Join(dir, "down.sh"), n.Name).Run() })
	if err != nil {
		tb.Fatalf("up.sh %s: %v: %s", n.Name, err, stderr.String())
	}
	n.URL = strings.TrimSpace(string(out))
	return n
}
