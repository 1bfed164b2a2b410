package controlplane

// This file runs the real agent package against the control plane (the
// depguard rule keeping the two apart has an exception for this file only):
// what is tested is the pair, an agent retrying an enrollment whose answer
// was lost.

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/forlock/fleet/agent"
	"github.com/forlock/fleet/controlplane/internal/api"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

func (e *env) tokenByID(t *testing.T) map[string]*forlockv1.JoinToken {
	t.Helper()
	resp, err := e.nodes.ListJoinTokens(e.admin(), &forlockv1.ListJoinTokensRequest{IncludeInactive: true})
	require.NoError(t, err)
	out := map[string]*forlockv1.JoinToken{}
	for _, tok := range resp.GetTokens() {
		out[tok.GetDescription()] = tok
	}
	return out
}

func (e *env) describedToken(t *testing.T, desc string) string {
	t.Helper()
	resp, err := e.nodes.CreateJoinToken(e.admin(), &forlockv1.CreateJoinTokenRequest{MaxUses: 1, Description: desc})
	require.NoError(t, err)
	return resp.GetSecret()
}

func TestEnrollmentSurvivesALostAnswer(t *testing.T) {
	var (
		mu        sync.Mutex
		committed []string // node IDs of committed enrollments, in order
	)
	e := startEnv(t, func(c *Config) {
		c.enrollHooks = api.EnrollHooks{
			AfterCommit: func(_ context.Context, nodeID string) error {
				mu.Lock()
				defer mu.Unlock()
				committed = append(committed, nodeID)
				if len(committed) == 1 {
					return status.Error(codes.Unavailable, "test: the answer was lost")
				}
				return nil
			},
			BeforeCommit: func(ctx context.Context, name string) {
				if name == "late-1" {
					<-ctx.Done() // the caller's deadline passes before the commit
				}
			},
		}
	})
	secret := e.describedToken(t, "lost")

	a, err := agent.New(agent.Config{
		ControlPlane: e.srv.Addr().String(), CAFile: e.srv.CAFile(), JoinToken: secret, Name: "lost-1",
		StateDir: filepath.Join(t.TempDir(), "agent"), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
	})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})

	require.Eventually(t, func() bool { return a.Stats().Connected }, 20*time.Second, 10*time.Millisecond)
	mu.Lock()
	require.Len(t, committed, 2, "the first answer was lost, the retry committed")
	require.Equal(t, committed[0], committed[1], "the retry gets the node the lost answer named")
	mu.Unlock()
	st := a.Stats()
	require.Equal(t, committed[0], st.NodeID)
	require.EqualValues(t, 1, st.Enrollments, "the agent received one answer")
	require.EqualValues(t, 1, e.tokenByID(t)["lost"].GetUses(), "the token is charged once")
	nodes, err := e.nodes.ListNodes(e.admin(), &forlockv1.ListNodesRequest{})
	require.NoError(t, err)
	require.Len(t, nodes.GetNodes(), 1)

	// The same token with another key under that name: refused (rule c).
	_, err = e.enroll(secret, "lost-1")
	requireCode(t, err, codes.AlreadyExists, "already enrolled with another key")
	require.EqualValues(t, 1, e.tokenByID(t)["lost"].GetUses())

	// A caller whose deadline passes before the commit: nothing committed,
	// the use stays. Its twin with time to wait commits and is charged.
	late := e.describedToken(t, "late")
	req, _ := newEnrollRequest(t, late, "late-1")
	short, cancelShort := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancelShort()
	_, err = forlockv1.NewAgentServiceClient(e.dial(nil)).Enroll(short, req)
	requireCode(t, err, codes.DeadlineExceeded, "")
	time.Sleep(300 * time.Millisecond) // let the server side run to its end
	require.Zero(t, e.tokenByID(t)["late"].GetUses(), "an enrollment nobody waits for is not committed")
	mu.Lock()
	require.Len(t, committed, 2, "nor answered")
	mu.Unlock()
	_, err = e.nodes.GetNode(e.admin(), &forlockv1.GetNodeRequest{Node: "late-1"})
	requireCode(t, err, codes.NotFound, "")
	_, err = e.enroll(late, "late-2")
	require.NoError(t, err)
	require.EqualValues(t, 1, e.tokenByID(t)["late"].GetUses())
}
