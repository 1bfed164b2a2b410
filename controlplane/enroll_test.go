package controlplane

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/forlock/fleet/internal/pki"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

func requireCode(t *testing.T, err error, code codes.Code, msgPart string) {
	t.Helper()
	require.Error(t, err)
	st, ok := status.FromError(err)
	require.True(t, ok, "not a status error: %v", err)
	require.Equal(t, code, st.Code(), "message: %s", st.Message())
	require.Contains(t, st.Message(), msgPart)
}

func TestEnrollRefusals(t *testing.T) {
	e := startEnv(t, nil)

	expired := e.token(1, 20*time.Millisecond, nil)
	time.Sleep(50 * time.Millisecond)

	usedUp := e.token(1, time.Hour, nil)
	e.mustEnroll(usedUp, "first")

	revoked := e.token(5, time.Hour, nil)
	list, err := e.nodes.ListJoinTokens(e.admin(), &forlockv1.ListJoinTokensRequest{})
	require.NoError(t, err)
	var revokedID string
	for _, tok := range list.GetTokens() {
		if tok.GetMaxUses() == 5 {
			revokedID = tok.GetId()
		}
	}
	_, err = e.nodes.RevokeJoinToken(e.admin(), &forlockv1.RevokeJoinTokenRequest{Id: revokedID})
	require.NoError(t, err)

	unknown := "fjt_" + strings.Repeat("A", 43)

	for _, tc := range []struct {
		name, token string
		code        codes.Code
		msg         string
	}{
		{"expired", expired, codes.PermissionDenied, "expired"},
		{"used up", usedUp, codes.PermissionDenied, "no uses left"},
		{"revoked", revoked, codes.PermissionDenied, "revoked"},
		{"unknown", unknown, codes.Unauthenticated, "not known to this control plane"},
		{"malformed", "hello", codes.InvalidArgument, "malformed"},
		{"empty", "", codes.InvalidArgument, "malformed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.enroll(tc.token, "node-"+strings.ReplaceAll(tc.name, " ", "-"))
			requireCode(t, err, tc.code, tc.msg)
		})
	}

	nodes, err := e.nodes.ListNodes(e.admin(), &forlockv1.ListNodesRequest{})
	require.NoError(t, err)
	require.Len(t, nodes.GetNodes(), 1, "only the first enrollment may have created a node")
}

func TestFailedEnrollmentKeepsTheUse(t *testing.T) {
	e := startEnv(t, nil)
	tok := e.token(1, time.Hour, nil)
	req, _ := newEnrollRequest(t, tok, "n1")
	req.Csr[len(req.Csr)-1] ^= 0xff // break the signature
	_, err := forlockv1.NewAgentServiceClient(e.dial(nil)).Enroll(context.Background(), req)
	requireCode(t, err, codes.InvalidArgument, "signature")
	e.mustEnroll(tok, "n1") // the use is still there
}

func TestOneUseTokenRace(t *testing.T) {
	e := startEnv(t, nil)
	for round := range 5 {
		tok := e.token(1, time.Hour, nil)
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i := range errs {
			wg.Go(func() {
				_, errs[i] = e.enroll(tok, fmt.Sprintf("race-%d-%d", round, i))
			})
		}
		wg.Wait()
		ok := 0
		for _, err := range errs {
			if err == nil {
				ok++
			} else {
				requireCode(t, err, codes.PermissionDenied, "no uses left")
			}
		}
		require.Equal(t, 1, ok, "round %d: exactly one enrollment must win", round)
	}
}

func TestHundredConcurrentEnrollments(t *testing.T) {
	// A hundred fresh connections from one address at once are over the
	// default cap on unauthenticated connections (32): an agent retries a
	// refused one, this test does not, so it raises the cap.
	e := startEnv(t, func(c *Config) { c.Limits.UnauthConnsPerAddress = 200 })
	tok := e.token(100, time.Hour, map[string]string{"env": "test"})
	ids := make([]string, 100)
	var wg sync.WaitGroup
	errs := make([]error, 100)
	for i := range ids {
		wg.Go(func() {
			id, err := e.enroll(tok, "node-"+strconv.Itoa(i))
			errs[i] = err
			if err == nil {
				ids[i] = id.resp.GetNodeId()
			}
		})
	}
	wg.Wait()
	seen := map[string]bool{}
	for i, err := range errs {
		require.NoError(t, err, "enrollment %d", i)
		require.False(t, seen[ids[i]], "duplicate node ID %s", ids[i])
		seen[ids[i]] = true
	}
	nodes, err := e.nodes.ListNodes(e.admin(), &forlockv1.ListNodesRequest{LabelSelector: "env=test"})
	require.NoError(t, err)
	require.Len(t, nodes.GetNodes(), 100)
	_, err = e.enroll(tok, "one-too-many")
	requireCode(t, err, codes.PermissionDenied, "no uses left")
}

func TestCSRRefusals(t *testing.T) {
	e := startEnv(t, nil)
	tok := e.token(10, time.Hour, nil)
	client := forlockv1.NewAgentServiceClient(e.dial(nil))

	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	rsaCSR, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "n"}}, rsaKey)
	require.NoError(t, err)
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	require.NoError(t, err)
	p384CSR, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "n"}}, p384)
	require.NoError(t, err)
	key, err := pki.GenerateKey()
	require.NoError(t, err)
	bigCSR, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: strings.Repeat("x", 3000)}}, key)
	require.NoError(t, err)
	longField, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: strings.Repeat("x", 500)}}, key)
	require.NoError(t, err)
	good, err := pki.CreateCSR(key, "n")
	require.NoError(t, err)
	badSig := bytes.Clone(good)
	badSig[len(badSig)-3] ^= 0x01

	for _, tc := range []struct {
		name string
		csr  []byte
		msg  string
	}{
		{"rsa key", rsaCSR, "ECDSA P-256"},
		{"p384 key", p384CSR, "ECDSA P-256"},
		{"bad signature", badSig, "signature"},
		{"oversized", bigCSR, "exceeds"},
		{"oversized field", longField, "oversized"},
		{"garbage", []byte("not a csr"), "not a valid"},
		{"empty", nil, "not a valid"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := client.Enroll(context.Background(), &forlockv1.EnrollRequest{JoinToken: tok, Name: "csr-test", Csr: tc.csr})
			requireCode(t, err, codes.InvalidArgument, tc.msg)
		})
	}
	_, err = client.Enroll(context.Background(), &forlockv1.EnrollRequest{JoinToken: tok, Name: "Bad_Name", Csr: good})
	requireCode(t, err, codes.InvalidArgument, "node name")
	toks, err := e.nodes.ListJoinTokens(e.admin(), &forlockv1.ListJoinTokensRequest{})
	require.NoError(t, err)
	require.Zero(t, toks.GetTokens()[0].GetUses(), "refused enrollments must not consume uses")
}

func TestNoSecretsInDatabase(t *testing.T) {
	e := startEnv(t, nil)
	secrets := []string{e.token(3, time.Hour, nil), e.token(1, time.Hour, nil)}
	e.mustEnroll(secrets[0], "n1")
	admin := strings.TrimPrefix(e.adminMD.Get("authorization")[0], "Bearer ")
	secrets = append(secrets, admin)
	e.stop()

	raw, err := os.ReadFile(filepath.Join(e.dir, dbFile))
	require.NoError(t, err)
	require.NotEmpty(t, raw)
	for _, s := range secrets {
		body := s[4:]
		require.False(t, bytes.Contains(raw, []byte(s)), "secret found in the database")
		require.False(t, bytes.Contains(raw, []byte(body)), "secret body found in the database")
		require.False(t, bytes.Contains(raw, []byte(body[:16])), "part of a secret found in the database")
	}
	// The hashes are there, so the checks above looked at the right bytes.
	for _, s := range secrets {
		h := sha256.Sum256([]byte(s))
		enc := []byte(base64.StdEncoding.EncodeToString(h[:]))
		require.True(t, bytes.Contains(raw, enc) || bytes.Contains(raw, h[:]), "hash of a secret not found")
	}
}
