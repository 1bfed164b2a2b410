package commands

import (
	"bytes"
	"context"
	"net"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// run executes forlockctl in-process with only the given environment.
func run(t *testing.T, env map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = Run(context.Background(), args, IO{
		In:     strings.NewReader(""),
		Out:    &out,
		Err:    &errOut,
		Getenv: func(k string) string { return env[k] },
	})
	return code, out.String(), errOut.String()
}

func TestRunLocalErrors(t *testing.T) {
	home := t.TempDir() // no config file here
	dead := closedAddr(t)
	conn := map[string]string{"HOME": home, envAddr: dead, envToken: "tok"}
	noConn := map[string]string{"HOME": home}

	tests := []struct {
		name     string
		env      map[string]string
		args     []string
		wantCode int
		wantErr  string
	}{
		{"ttl zero", conn, []string{"tokens", "create", "--ttl", "0"}, ExitUsage, "--ttl 0s: give a lifetime above zero"},
		{"ttl too long", conn, []string{"tokens", "create", "--ttl", "721h"}, ExitUsage, "at most 720h"},
		{"max uses zero", conn, []string{"tokens", "create", "--max-uses", "0"}, ExitUsage, "--max-uses 0: give a number from 1 to 10000"},
		{"bad label", conn, []string{"tokens", "create", "--label", "env"}, ExitUsage, `--label "env": write it as key=value`},
		{"long description", conn, []string{"tokens", "create", "--description", strings.Repeat("x", 257)}, ExitUsage, "use at most 256"},
		{"for-node with uses", conn, []string{"tokens", "create", "--for-node", "web1", "--max-uses", "2"}, ExitUsage, "--for-node makes a token with exactly one use"},
		{"for-node with labels", conn, []string{"tokens", "create", "--for-node", "web1", "--label", "a=b"}, ExitUsage, "--for-node takes no --label"},
		{"quiet and json", conn, []string{"tokens", "create", "-q", "-o", "json"}, ExitUsage, "-q and -o json cannot be combined"},
		{"bad state", conn, []string{"nodes", "list", "--state", "sideways"}, ExitUsage, `unknown state "sideways"`},
		{"bad selector", conn, []string{"nodes", "list", "-l", "env==x"}, ExitUsage, "label selector"},
		{"bad output", conn, []string{"-o", "yaml", "nodes", "list"}, ExitUsage, `unknown output format "yaml"`},
		{"unknown flag", conn, []string{"nodes", "list", "--colour"}, ExitUsage, "unknown flag: --colour"},
		{"unknown command", conn, []string{"nodez"}, ExitUsage, `unknown command "nodez" for "forlockctl" (did you mean "nodes"?)`},
		{"unknown subcommand", conn, []string{"tokens", "delete"}, ExitUsage, `unknown command "delete" for "forlockctl tokens"`},
		{"get without node", conn, []string{"nodes", "get"}, ExitUsage, "needs exactly one NODE"},
		{"revoke two ids", conn, []string{"tokens", "revoke", "a", "b"}, ExitUsage, "needs exactly one token ID"},
		{"list with args", conn, []string{"tokens", "list", "x"}, ExitUsage, "takes no arguments"},
		{"verify all without latest", conn, []string{"backups", "verify", "--all"}, ExitUsage, "-l and --all drill each node's newest restore point: add --latest"},
		{"verify point with selector", conn, []string{"backups", "verify", "rp1", "-l", "env=prod"}, ExitUsage, "a RESTORE_POINT belongs to one node"},
		{"verify no target", conn, []string{"backups", "verify", "--latest"}, ExitUsage, "which nodes? give --node NODE, or --latest with -l SELECTOR or --all"},
		{"verify all and selector", conn, []string{"backups", "verify", "--latest", "--all", "-l", "a=b"}, ExitUsage, "--selector and --all cannot be combined"},
		{"verify empty selector", conn, []string{"backups", "verify", "--latest", "-l", ""}, ExitUsage, "empty label selector"},
		{"remove needs yes off a terminal", conn, []string{"nodes", "remove", "n1"}, ExitUsage, `refusing to remove node "n1" without confirmation: pass --yes`},
		{"remove checks settings first", noConn, []string{"nodes", "remove", "n1"}, ExitFailure, "no control plane address"},
		{"missing address", noConn, []string{"nodes", "list"}, ExitFailure, "no control plane address: pass --addr host:port, set FORLOCK_ADDR, or pass --config <data-dir>/forlockctl.yaml"},
		{"bad timeout", conn, []string{"--timeout", "0s", "nodes", "list"}, ExitUsage, "--timeout must be positive"},
		{"ca file missing", conn, []string{"--ca-file", "/nonexistent/ca.pem", "nodes", "list"}, ExitFailure, "read CA file (check --ca-file"},
		{"unreachable", conn, []string{"nodes", "list"}, ExitFailure, "cannot reach the control plane at " + dead + ": is it running? check --addr (address from FORLOCK_ADDR"},
		{"flag addr wins", conn, []string{"--addr", "127.0.0.1:1", "tokens", "list"}, ExitFailure, "cannot reach the control plane at 127.0.0.1:1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := run(t, tt.env, tt.args...)
			require.Equal(t, tt.wantCode, code, "stderr: %s", stderr)
			require.True(t, strings.HasPrefix(stderr, "forlockctl: "), "stderr %q", stderr)
			require.Contains(t, stderr, tt.wantErr)
			require.Empty(t, stdout)
		})
	}
}

func TestRunVersionAndHelp(t *testing.T) {
	code, stdout, stderr := run(t, nil, "version")
	require.Equal(t, ExitOK, code)
	require.Empty(t, stderr)
	require.True(t, strings.HasPrefix(stdout, "forlockctl "), stdout)

	code, stdout, _ = run(t, nil, "-o", "json", "version")
	require.Equal(t, ExitOK, code)
	require.Contains(t, stdout, `"version":`)

	code, stdout, _ = run(t, nil, "nodes")
	require.Equal(t, ExitOK, code)
	require.Contains(t, stdout, "remove")
}

func TestConfirm(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"y\n", true},
		{"YES\n", true},
		{" yes \r\n", true},
		{"yes", true},
		{"n\n", false},
		{"\n", false},
		{"", false},
		{"yep\n", false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			var prompt bytes.Buffer
			got, err := confirm(strings.NewReader(tt.in), &prompt, "sure? [y/N]: ")
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
			require.True(t, strings.HasPrefix(prompt.String(), "sure? [y/N]: "))
		})
	}
}

// closedAddr returns a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}
