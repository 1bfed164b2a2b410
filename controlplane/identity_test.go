package controlplane

import (
	"context"
	"crypto/ecdsa"
	"crypto/tls"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/forlock/fleet/internal/pki"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

func (e *env) forNodeToken(node string) (string, error) {
	resp, err := e.nodes.CreateJoinToken(e.admin(), &forlockv1.CreateJoinTokenRequest{ForNode: node, Ttl: durationpb.New(time.Hour)})
	return resp.GetSecret(), err
}

// goodbye reads the stream until the control plane's goodbye.
func goodbye(t *testing.T, s stream) *forlockv1.Goodbye {
	t.Helper()
	for {
		msg, err := s.Recv()
		require.NoError(t, err)
		if g := msg.GetGoodbye(); g != nil {
			return g
		}
	}
}

func refusedConnect(t *testing.T, e *env, cert tls.Certificate, msg string) {
	t.Helper()
	s, err := e.tryConnect(cert)
	if err == nil {
		_, err = s.Recv()
	}
	requireCode(t, err, codes.Unauthenticated, msg)
}

func TestEnrollUnderARegisteredName(t *testing.T) {
	e := startEnv(t, nil)
	web1 := e.mustEnroll(e.token(1, time.Hour, nil), "web1")
	s, _ := e.connect(web1)
	heartbeat(t, s, 1)
	e.waitState("web1", forlockv1.NodeState_NODE_STATE_ONLINE, time.Second)

	// A valid token with labels, another key: refused, nothing changes.
	t2 := e.token(3, time.Hour, map[string]string{"role": "x"})
	_, err := e.enroll(t2, "web1")
	requireCode(t, err, codes.AlreadyExists, "node web1 is already enrolled with another key: to replace its host, create a token with 'forlockctl tokens create --for-node web1', or remove the node first with 'forlockctl nodes remove web1'")
	n := e.node("web1")
	require.Empty(t, n.GetLabels())
	require.True(t, n.GetConnected(), "the real node's stream is untouched")
	require.EqualValues(t, 1, n.GetEnrollments())
	heartbeat(t, s, 2) // and its certificate still works
	_, err = renewFrom(t, e, web1.tlsCrt)
	require.NoError(t, err)
	// The refusal used nothing: the same token still enrolls three new nodes.
	for _, name := range []string{"a", "b", "c"} {
		e.mustEnroll(t2, name)
	}

	// --for-node: only for a registered node, one use, no labels.
	_, err = e.forNodeToken("nope")
	requireCode(t, err, codes.NotFound, "--for-node replaces the host of a registered node")
	_, err = e.nodes.CreateJoinToken(e.admin(), &forlockv1.CreateJoinTokenRequest{ForNode: "web1", MaxUses: 2})
	requireCode(t, err, codes.InvalidArgument, "exactly one use")
	_, err = e.nodes.CreateJoinToken(e.admin(), &forlockv1.CreateJoinTokenRequest{ForNode: "web1", Labels: map[string]string{"a": "b"}})
	requireCode(t, err, codes.InvalidArgument, "no labels")
	f1, err := e.forNodeToken("web1")
	require.NoError(t, err)
	_, err = e.enroll(f1, "a")
	requireCode(t, err, codes.PermissionDenied, "replaces the host of node web1 only, not a")

	// The replacement host: same node ID, new key; the old identity is out.
	repl := e.mustEnroll(f1, "web1")
	require.Equal(t, web1.resp.GetNodeId(), repl.resp.GetNodeId())
	require.Contains(t, goodbye(t, s).GetReason(), "identity retired")
	refusedConnect(t, e, web1.tlsCrt, "retired")
	_, err = e.enrollWith(e.token(1, time.Hour, nil), "web1", web1.key)
	requireCode(t, err, codes.AlreadyExists, "already enrolled with another key")
	_, hello := e.connect(repl)
	require.Equal(t, web1.resp.GetNodeId(), hello.GetNodeId())
	require.EqualValues(t, 2, e.node("web1").GetEnrollments())
}

func renewFrom(t *testing.T, e *env, cert tls.Certificate) (tls.Certificate, error) {
	t.Helper()
	key, ok := cert.PrivateKey.(*ecdsa.PrivateKey)
	require.True(t, ok)
	csr, err := pki.CreateCSR(key, "x")
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := forlockv1.NewAgentServiceClient(e.dial(&cert)).RenewCertificate(ctx, &forlockv1.RenewCertificateRequest{Csr: csr})
	if err != nil {
		return tls.Certificate{}, err
	}
	certs, err := pki.ParseCertsPEM(resp.GetCertificateChain())
	require.NoError(t, err)
	return tls.Certificate{Certificate: [][]byte{certs[0].Raw}, PrivateKey: key, Leaf: certs[0]}, nil
}

func TestOneLiveCertificatePerNode(t *testing.T) {
	const grace = time.Second
	e := startEnv(t, func(c *Config) { c.AgentCertGrace = grace })
	id := e.mustEnroll(e.token(1, time.Hour, nil), "n1")
	c1 := id.tlsCrt
	c2, err := renewFrom(t, e, c1)
	require.NoError(t, err)
	renewedAt := time.Now()

	// Within the grace the previous certificate still connects.
	e.connect(&identity{tlsCrt: c1})
	require.Equal(t, pki.SerialHex(c2.Leaf), e.node("n1").GetCertificateSerial())

	time.Sleep(time.Until(renewedAt.Add(grace + 200*time.Millisecond)))
	// After it: Connect from C1 refused, the node not quarantined by that.
	refusedConnect(t, e, c1, "superseded")
	require.False(t, e.node("n1").GetQuarantined())
	// The stream opened with C1 is closed by the sweep.
	require.Eventually(t, func() bool { return !e.node("n1").GetConnected() }, 5*time.Second, 20*time.Millisecond)
	e.connect(&identity{tlsCrt: c2}) // the newest works

	// A renewal from C1: refused, and the node is quarantined.
	_, err = renewFrom(t, e, c1)
	requireCode(t, err, codes.Unauthenticated, "superseded")
	n := e.node("n1")
	require.True(t, n.GetQuarantined())
	require.Contains(t, n.GetQuarantineReason(), "superseded certificate "+pki.SerialHex(c1.Leaf)+" tried to renew")
	require.False(t, n.GetConnected(), "quarantine closes the node's stream")
	refusedConnect(t, e, c2, "quarantined")
	_, err = renewFrom(t, e, c2)
	requireCode(t, err, codes.Unauthenticated, "quarantined")
	// Its own key does not get it back; a --for-node token does.
	_, err = e.enrollWith(e.token(1, time.Hour, nil), "n1", id.key)
	requireCode(t, err, codes.PermissionDenied, "quarantined")
	f, err := e.forNodeToken("n1")
	require.NoError(t, err)
	back := e.mustEnroll(f, "n1")
	require.Equal(t, id.resp.GetNodeId(), back.resp.GetNodeId())
	require.False(t, e.node("n1").GetQuarantined())
	e.connect(back)
}

func TestGraceEndsWhenTheNewestCertificateConnects(t *testing.T) {
	e := startEnv(t, nil) // the default grace: five minutes
	id := e.mustEnroll(e.token(1, time.Hour, nil), "n1")
	c2, err := renewFrom(t, e, id.tlsCrt)
	require.NoError(t, err)
	e.connect(&identity{tlsCrt: id.tlsCrt}) // within the grace, before the switch: fine
	e.connect(&identity{tlsCrt: c2})        // the agent has switched over
	refusedConnect(t, e, id.tlsCrt, "superseded")
	_, err = renewFrom(t, e, id.tlsCrt)
	requireCode(t, err, codes.Unauthenticated, "superseded")
	require.True(t, e.node("n1").GetQuarantined(), "a copy of the old certificate renewing: two holders of one node")
}
