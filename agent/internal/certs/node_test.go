package certs

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/forlock/fleet/agent/internal/dockerrt"
	"github.com/stretchr/testify/require"

	"github.com/forlock/fleet/test/testenv"
)

const nginxImage = "forlock-test/nginx:latest"

// nginxNode is a real nginx container of a Forlock test node, alone: the
// test node image with its self-signed certificate in the tls volume and
// 443 published on a loopback port.
type nginxNode struct {
	name string
	rt   *dockerrt.Runtime
	addr string
	logs *syncBuffer
}

// startNginx runs the test node's nginx image. Without the image the test
// fails naming the command that builds it. The container and its
// volume are removed when the test ends.
func startNginx(t *testing.T) *nginxNode {
	t.Helper()
	if testing.Short() {
		t.Skip("needs Docker and the test node's nginx image")
	}
	testenv.RequireImage(t, nginxImage)
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	name := "fl-h4-certs-" + hex.EncodeToString(b) + "-nginx"
	out, err := exec.Command("docker", "run", "-d", "--name", name, "--label", "org.forlock.test=certs",
		"-p", "127.0.0.1::443", nginxImage).CombinedOutput()
	require.NoError(t, err, "%s", out)
	t.Cleanup(func() { _ = exec.Command("docker", "rm", "-f", "-v", name).Run() })

	out, err = exec.Command("docker", "port", name, "443/tcp").Output()
	require.NoError(t, err)
	addr := strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0])
	_, _, err = net.SplitHostPort(addr)
	require.NoError(t, err, "docker port: %q", out)

	rt, err := dockerrt.New(dockerrt.Config{Names: []string{name}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = rt.Close() })
	n := &nginxNode{name: name, rt: rt, addr: addr, logs: &syncBuffer{}}
	require.Eventually(t, func() bool {
		_, err := Served(t.Context(), addr, "localhost")
		return err == nil
	}, 30*time.Second, 100*time.Millisecond, "nginx in %s never served TLS on %s", name, addr)
	return n
}

// config is an Install config for the node, logging into n.logs.
func (n *nginxNode) config(t *testing.T) Config {
	t.Helper()
	return Config{
		Docker: n.rt, Service: n.name, Names: []string{"localhost", "127.0.0.1"}, Addr: n.addr,
		ConfirmTimeout: 10 * time.Second,
		Logger:         slog.New(slog.NewTextHandler(io.MultiWriter(n.logs, t.Output()), nil)),
	}
}

// served is the leaf nginx serves now.
func (n *nginxNode) served(t *testing.T) *x509.Certificate {
	t.Helper()
	c, err := Served(t.Context(), n.addr, "localhost")
	require.NoError(t, err)
	return c
}

// requireServes waits for nginx to serve want: a reload is asynchronous.
func (n *nginxNode) requireServes(t *testing.T, want *x509.Certificate) {
	t.Helper()
	var got *x509.Certificate
	require.Eventually(t, func() bool {
		c, err := Served(t.Context(), n.addr, "localhost")
		got = c
		return err == nil && c.Equal(want)
	}, 10*time.Second, 50*time.Millisecond, "nginx serves %v, want serial %s", func() string {
		if got == nil {
			return "nothing"
		}
		return "serial " + SerialHex(got.SerialNumber)
	}(), SerialHex(want.SerialNumber))
}

// read returns a file of the container; nil if it does not exist.
func (n *nginxNode) read(t *testing.T, path string) []byte {
	t.Helper()
	b, err := n.rt.ReadFile(t.Context(), n.name, path, MaxPEM)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	require.NoError(t, err)
	return b
}

// sh runs a shell command in the container and returns its stdout.
func (n *nginxNode) sh(t *testing.T, script string) string {
	t.Helper()
	var out bytes.Buffer
	res, err := n.rt.Exec(t.Context(), n.name, "0", []string{"sh", "-c", script}, nil, &out)
	require.NoError(t, err)
	require.NoError(t, res.Err(script))
	return out.String()
}

// fakeTLS is a TLS server that presents cert for every handshake, standing
// in for something other than the node's nginx at the confirm address. It
// calls each of onConn (if any) when a connection arrives.
func fakeTLS(t *testing.T, certPEM, keyPEM []byte, onConn ...func()) string {
	t.Helper()
	kp, err := tls.X509KeyPair(certPEM, keyPEM)
	require.NoError(t, err)
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{kp}, MinVersion: tls.VersionTLS12})
	require.NoError(t, err)
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			for _, f := range onConn {
				f()
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_ = c.(*tls.Conn).HandshakeContext(ctx)
			cancel()
			_ = c.Close()
		}
	})
	t.Cleanup(func() {
		_ = l.Close()
		wg.Wait()
	})
	return l.Addr().String()
}

// syncBuffer collects log output from several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
