package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
	"github.com/stretchr/testify/require"

	"github.com/forlock/fleet/test/testenv"
)

// The Vault dev server of TestCertificatesAndTransitWithVault.
const (
	e2eVaultRootToken = "forlock-e2e-h7-root"
	e2eTransitKey     = "forlock-backup"
	e2eFleetPolicy    = `
path "pki/issue/*"        { capabilities = ["update"] }
path "secret/data/*"      { capabilities = ["read"] }
path "transit/keys/*"     { capabilities = ["read"] }
path "transit/encrypt/*"  { capabilities = ["update"] }
path "transit/decrypt/*"  { capabilities = ["update"] }
path "transit/rewrap/*"   { capabilities = ["update"] }
path "transit/datakey/plaintext/*" { capabilities = ["update"] }
`
)

// e2eVault is a Vault dev server started by deploy/vault/start.sh.
type e2eVault struct {
	dir, addr string
	admin     *api.Client
}

// startVault starts a dev server for t (stopped at cleanup) with PKI (an
// ECDSA P-256 root, role "node"), Transit (key e2eTransitKey) and KV v2 at
// secret/, and returns it with a root client.
func startVault(t *testing.T) *e2eVault {
	t.Helper()
	testenv.RequireServerBinary(t, "vault")
	v := &e2eVault{dir: t.TempDir()}
	var err error
	for range 3 { // a free port can be taken before Vault binds it
		cmd := exec.Command("bash", repoPath("deploy", "vault", "start.sh"), v.dir, port(t))
		cmd.Env = append(os.Environ(), "VAULT_DEV_ROOT_TOKEN_ID="+e2eVaultRootToken)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		var out []byte
		if out, err = cmd.Output(); err == nil {
			v.addr = strings.TrimSpace(string(out))
			break
		}
		err = fmt.Errorf("%w: %s", err, stderr.String())
	}
	require.NoError(t, err, "start the Vault dev server")
	t.Cleanup(v.stop)

	tr := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(tr.CloseIdleConnections)
	v.admin, err = api.NewClient(&api.Config{Address: v.addr, HttpClient: &http.Client{Transport: tr}, Timeout: 30 * time.Second})
	require.NoError(t, err)
	v.admin.SetToken(e2eVaultRootToken)
	sys := v.admin.Sys()
	require.NoError(t, sys.Mount("pki", &api.MountInput{Type: "pki", Config: api.MountConfigInput{MaxLeaseTTL: "87600h"}}))
	require.NoError(t, sys.Mount("transit", &api.MountInput{Type: "transit"}))
	for _, w := range []struct {
		path string
		data map[string]any
	}{
		{"pki/root/generate/internal", map[string]any{"common_name": "forlock e2e root", "key_type": "ec", "key_bits": 256, "ttl": "87600h"}},
		{"pki/roles/node", map[string]any{"key_type": "ec", "key_bits": 256, "allow_any_name": true, "allow_ip_sans": true, "allow_localhost": true, "max_ttl": "2160h"}},
		{"transit/keys/" + e2eTransitKey, map[string]any{"type": "aes256-gcm96"}},
	} {
		_, err := v.admin.Logical().Write(w.path, w.data)
		require.NoError(t, err, "write %s", w.path)
	}
	require.NoError(t, sys.PutPolicy("fleet", e2eFleetPolicy))
	return v
}

func (v *e2eVault) stop() {
	_ = exec.Command("bash", repoPath("deploy", "vault", "stop.sh"), v.dir).Run()
}

// token is a token of the fleet policy in a 0600 file.
func (v *e2eVault) tokenFile(t *testing.T) string {
	t.Helper()
	s, err := v.admin.Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{"fleet"}})
	require.NoError(t, err)
	f := filepath.Join(t.TempDir(), "vault-token")
	require.NoError(t, os.WriteFile(f, []byte(s.Auth.ClientToken+"\n"), 0o600))
	return f
}

// putKV puts a certificate and key at secret/<path> (KV v2).
func (v *e2eVault) putKV(t *testing.T, path, certPEM, keyPEM string) {
	t.Helper()
	_, err := v.admin.KVv2("secret").Put(context.Background(), path, map[string]any{"certificate": certPEM, "private_key": keyPEM})
	require.NoError(t, err)
}

// servedCert is the leaf nginx serves at addr, read by a handshake.
func servedCert(t *testing.T, addr string) *x509.Certificate {
	t.Helper()
	d := &net.Dialer{Timeout: 10 * time.Second}
	conn, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{InsecureSkipVerify: true, ServerName: "localhost"}) //nolint:gosec // reads the leaf, verifies nothing
	require.NoError(t, err)
	defer func() { _ = conn.Close() }()
	certs := conn.ConnectionState().PeerCertificates
	require.NotEmpty(t, certs)
	return certs[0]
}

func serialHex(c *x509.Certificate) string { return fmt.Sprintf("%x", c.SerialNumber) }

// selfSignedPair is a P-256 certificate for localhost and 127.0.0.1 and its
// key, in PEM.
func selfSignedPair(t *testing.T, cn string) (certPEM, keyPEM string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: cn},
		DNSNames: []string{cn, "localhost"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(60 * 24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(t, err)
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}))
}

type jsonNodeCert struct {
	NodeName    string `json:"nodeName"`
	Certificate struct {
		Serial  string   `json:"serial"`
		Names   []string `json:"names"`
		KeyType string   `json:"keyType"`
		Source  string   `json:"source"`
	} `json:"certificate"`
}

func (c *cluster) nodeCert(node string) (jsonNodeCert, bool) {
	c.t.Helper()
	var resp struct {
		Certificates []jsonNodeCert `json:"certificates"`
	}
	out := c.ctl("certs", "list", "-o", "json")
	require.NoError(c.t, json.Unmarshal([]byte(out), &resp), "%s", out)
	for _, nc := range resp.Certificates {
		if nc.NodeName == node {
			return nc, true
		}
	}
	return jsonNodeCert{}, false
}

// redisKeyIDs are the key IDs of the node's Redis artifacts, newest first.
func (c *cluster) redisKeyIDs(node string) []string {
	c.t.Helper()
	var resp struct {
		RestorePoints []struct {
			Artifacts []struct {
				Kind  string `json:"kind"`
				KeyID string `json:"keyId"`
			} `json:"artifacts"`
		} `json:"restorePoints"`
	}
	out := c.ctl("restore", "--list", "--node", node, "-o", "json")
	require.NoError(c.t, json.Unmarshal([]byte(out), &resp), "%s", out)
	var ids []string
	for _, rp := range resp.RestorePoints {
		for _, a := range rp.Artifacts {
			if a.Kind == "ARTIFACT_KIND_REDIS" {
				ids = append(ids, a.KeyID)
			}
		}
	}
	return ids
}

// TestCertificatesAndTransitWithVault rotates a real test node's nginx
// certificate from a real Vault (PKI and KV v2), checks the refusals keep the
// served certificate, and backs up and restores with Transit-wrapped keys
// across a Transit key rotation. Sealing and stopping Vault come last.
func TestCertificatesAndTransitWithVault(t *testing.T) {
	requireTestNodeImages(t)
	v := startVault(t)
	cfg := filepath.Join(t.TempDir(), "controlplane.yaml")
	require.NoError(t, os.WriteFile(cfg, fmt.Appendf(nil, `version: 1
backup_keys: vault-transit
vault:
  address: %s
  token_file: %s
  pki_role: node
  transit_key: %s
  request_timeout: 5s
certs:
  extra_names: [localhost, 127.0.0.1]
`, v.addr, v.tokenFile(t), e2eTransitKey), 0o600))
	c := startCluster(t, "--config", cfg)
	backups := filepath.Join(t.TempDir(), "backups")
	n := c.upTestNode("fl-h7-crt", "--backup-dirs", backups, "--compose-dir", repoPath("deploy", "testnode"))
	https := "127.0.0.1:" + n.httpsPort

	// rotate runs certs rotate and returns the output of a failed run
	// (stdout and the error with stderr), or "" after a successful one.
	rotate := func(t *testing.T, wantOK bool, args ...string) string {
		t.Helper()
		start := time.Now()
		out, err := c.ctlErr(append([]string{"certs", "rotate", "--node", n.name}, args...)...)
		t.Logf("certs rotate %v: %s", args, time.Since(start).Round(time.Millisecond))
		if wantOK {
			require.NoError(t, err, "%s", out)
			return ""
		}
		require.Error(t, err, "%s", out)
		return out + "\n" + err.Error()
	}

	t.Run("PKI: nginx serves a new P-256 certificate", func(t *testing.T) {
		before := servedCert(t, https)
		rotate(t, true)
		got := servedCert(t, https)
		require.NotEqual(t, serialHex(before), serialHex(got), "a new serial is served")
		pub, ok := got.PublicKey.(*ecdsa.PublicKey)
		require.True(t, ok, "ECDSA key, got %T", got.PublicKey)
		require.Equal(t, elliptic.P256(), pub.Curve)
		require.Equal(t, n.name, got.Subject.CommonName)
		require.NoError(t, got.VerifyHostname("127.0.0.1"))
		require.NoError(t, got.VerifyHostname("localhost"))
		var nc jsonNodeCert
		require.Eventually(t, func() bool {
			var ok bool
			nc, ok = c.nodeCert(n.name)
			return ok && strings.EqualFold(strings.TrimLeft(nc.Certificate.Serial, "0"), strings.TrimLeft(serialHex(got), "0"))
		}, 15*time.Second, 200*time.Millisecond, "certs list shows the served serial %s: %+v", serialHex(got), nc)
		require.Equal(t, "CERTIFICATE_SOURCE_VAULT_PKI", nc.Certificate.Source)
	})

	t.Run("KV: nginx serves the pair put in Vault", func(t *testing.T) {
		certPEM, keyPEM := selfSignedPair(t, n.name)
		v.putKV(t, "forlock/tls/"+n.name, certPEM, keyPEM)
		rotate(t, true, "--source", "kv")
		blk, _ := pem.Decode([]byte(certPEM))
		want, err := x509.ParseCertificate(blk.Bytes)
		require.NoError(t, err)
		require.Equal(t, serialHex(want), serialHex(servedCert(t, https)))
		require.Eventually(t, func() bool {
			nc, ok := c.nodeCert(n.name)
			return ok && nc.Certificate.Source == "CERTIFICATE_SOURCE_VAULT_KV"
		}, 15*time.Second, 200*time.Millisecond)
	})

	t.Run("KV: a key that does not match the certificate is refused, the old one still served", func(t *testing.T) {
		before := serialHex(servedCert(t, https))
		certPEM, _ := selfSignedPair(t, n.name)
		_, otherKey := selfSignedPair(t, n.name)
		v.putKV(t, "forlock/tls/mismatch-"+n.name, certPEM, otherKey)
		out := rotate(t, false, "--source", "kv", "--kv-path", "forlock/tls/mismatch-{node}")
		require.Regexp(t, `(?i)key.*(match|certificate)`, out)
		require.NotContains(t, out, "PRIVATE KEY", "no key material in errors")
		require.Equal(t, before, serialHex(servedCert(t, https)))
	})

	t.Run("failing nginx -t keeps the old certificate and fails the task", func(t *testing.T) {
		before := serialHex(servedCert(t, https))
		args := n.agentArgs
		n.agent.kill(syscall.SIGTERM)
		// nginx's config names /etc/nginx/tls/key.pem: with the key written
		// elsewhere, the new certificate and the old key disagree.
		n.agentArgs = append(append([]string(nil), args...), "--nginx-key-path", "/etc/nginx/tls/other-key.pem")
		c.restartAgent(n)
		out := rotate(t, false)
		require.Regexp(t, `nginx rejected|nginx -t`, out)
		require.Equal(t, before, serialHex(servedCert(t, https)))
		n.agent.kill(syscall.SIGTERM)
		n.agentArgs = args
		c.restartAgent(n)
	})

	t.Run("Transit: backup restores, and still restores after key rotation and rewrap", func(t *testing.T) {
		load, err := exec.Command("docker", "exec", n.name+"-api", "forlockapi", "load", "--mb", "1").CombinedOutput()
		require.NoError(t, err, "%s", load)
		before := n.state(t)
		require.NotEmpty(t, before.Redis)
		start := time.Now()
		res, err := c.ctlErr("backup", "--node", n.name, "--dest", filepath.Join(backups, n.name), "--only", "redis")
		require.NoError(t, err, "%s", res)
		t.Logf("backup --only redis: %s", time.Since(start).Round(time.Millisecond))
		ids := c.redisKeyIDs(n.name)
		require.Len(t, ids, 1)
		require.True(t, strings.HasPrefix(ids[0], "vault-transit:"), "key ID %q", ids[0])

		n.damage(t)
		out, err := c.ctlErr("restore", "--latest", "--only", "redis", "--node", n.name, "--yes")
		require.NoError(t, err, "%s", out)
		require.Equal(t, before.Redis, n.state(t).Redis)

		_, err = v.admin.Logical().Write("transit/keys/"+e2eTransitKey+"/rotate", nil)
		require.NoError(t, err)
		out = c.ctl("backups", "rewrap", "--dry-run")
		require.Contains(t, out, "would re-wrap 1 artifacts")
		out = c.ctl("backups", "rewrap")
		require.Contains(t, out, "re-wrapped 1 artifacts")
		ids = c.redisKeyIDs(n.name)
		require.Len(t, ids, 1)
		require.True(t, strings.HasPrefix(ids[0], "vault-transit:") && strings.HasSuffix(ids[0], ":v2"), "key ID %q", ids[0])
		require.Contains(t, c.ctl("backups", "rewrap"), "re-wrapped 0 artifacts")

		n.damage(t)
		out, err = c.ctlErr("restore", "--latest", "--only", "redis", "--node", n.name, "--yes")
		require.NoError(t, err, "%s", out)
		require.Equal(t, before.Redis, n.state(t).Redis)
	})

	t.Run("Vault sealed: a clear error and the served certificate unchanged", func(t *testing.T) {
		before := serialHex(servedCert(t, https))
		require.NoError(t, v.admin.Sys().Seal())
		out := rotate(t, false)
		require.Contains(t, out, "sealed")
		require.Equal(t, before, serialHex(servedCert(t, https)))
	})

	t.Run("Vault down: a clear error and the served certificate unchanged", func(t *testing.T) {
		before := serialHex(servedCert(t, https))
		v.stop()
		out := rotate(t, false)
		require.Contains(t, out, "unreachable")
		require.Equal(t, before, serialHex(servedCert(t, https)))
	})
}
