package certs

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestValidate(t *testing.T) {
	root := newCA(t, "Test Root", nil)
	inter := newCA(t, "Test Intermediate", root)
	pair, leaf := inter.leaf(t, leafOpts{})
	chain := append(append([]byte{}, inter.pem...), root.pem...)
	names := []string{"localhost", "node.forlock.test", "127.0.0.1"}
	now := time.Now()

	other, _ := inter.leaf(t, leafOpts{})
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	require.NoError(t, err)
	rsaPair, _ := root.leaf(t, leafOpts{key: rsaKey(t)})
	p384Pair, _ := root.leaf(t, leafOpts{key: p384})
	expired, _ := root.leaf(t, leafOpts{edit: func(c *x509.Certificate) {
		c.NotBefore, c.NotAfter = now.Add(-100*24*time.Hour), now.Add(-10*24*time.Hour)
	}})
	future, _ := root.leaf(t, leafOpts{edit: func(c *x509.Certificate) { c.NotBefore = now.Add(24 * time.Hour) }})
	clientOnly, _ := root.leaf(t, leafOpts{edit: func(c *x509.Certificate) {
		c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}})
	wildcard, _ := root.leaf(t, leafOpts{edit: func(c *x509.Certificate) { c.DNSNames = []string{"*.forlock.test"} }})
	oldInter := newCA(t, "Expired Intermediate", root, func(c *x509.Certificate) {
		c.NotBefore, c.NotAfter = now.Add(-48*time.Hour), now.Add(-24*time.Hour)
	})
	oldInterLeaf, _ := oldInter.leaf(t, leafOpts{})
	stranger := newCA(t, "Someone Else", nil)

	ecKey := pair.KeyPEM
	der, _ := pem.Decode(ecKey)
	encrypted := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Headers: map[string]string{
		"Proc-Type": "4,ENCRYPTED", "DEK-Info": "AES-128-CBC,00112233445566778899AABBCCDDEEFF"}, Bytes: der.Bytes})

	with := func(p Pair, edit func(*Pair)) Pair { edit(&p); return p }
	tests := []struct {
		name  string
		pair  Pair
		names []string
		err   string // empty: valid
	}{
		{name: "leaf and chain", pair: with(pair, func(p *Pair) { p.ChainPEM = chain })},
		{name: "fullchain in CertPEM", pair: with(pair, func(p *Pair) { p.CertPEM = append(append([]byte{}, p.CertPEM...), chain...) })},
		{name: "chain in both counts once", pair: with(pair, func(p *Pair) {
			p.CertPEM = append(append([]byte{}, p.CertPEM...), inter.pem...)
			p.ChainPEM = chain
		})},
		{name: "chain without its root", pair: with(pair, func(p *Pair) { p.ChainPEM = inter.pem })},
		{name: "no chain", pair: pair},
		{name: "PKCS #8 key after EC PARAMETERS and text", pair: with(pair, func(p *Pair) {
			k, err := x509.ParseECPrivateKey(der.Bytes)
			require.NoError(t, err)
			p.KeyPEM = append([]byte("Bag Attributes\n-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n"), pkcs8PEM(t, k)...)
		})},
		{name: "no names to check", pair: pair, names: []string{}},
		{name: "wildcard", pair: wildcard, names: []string{"a.forlock.test"}},

		{name: "key of another certificate", pair: with(pair, func(p *Pair) { p.KeyPEM = other.KeyPEM }),
			err: "private key does not match the certificate"},
		{name: "RSA", pair: rsaPair, err: "certificate's public key is RSA 2048-bit: ECDSA P-256 is required"},
		{name: "RSA key with a P-256 certificate", pair: with(pair, func(p *Pair) { p.KeyPEM = rsaPair.KeyPEM }),
			err: "private key is RSA: ECDSA P-256 is required"},
		{name: "P-384", pair: p384Pair, err: "certificate's public key is ECDSA P-384: ECDSA P-256 is required"},
		{name: "expired", pair: expired, err: "expired at"},
		{name: "not yet valid", pair: future, err: "is not valid before"},
		{name: "client certificate", pair: clientOnly, err: "does not allow TLS server use"},
		{name: "name not covered", pair: pair, names: []string{"localhost", "other.example", "10.0.0.1"},
			err: "does not cover other.example, 10.0.0.1; it covers localhost, node.forlock.test, 127.0.0.1"},
		{name: "wildcard is one label", pair: wildcard, names: []string{"a.b.forlock.test"}, err: "does not cover a.b.forlock.test"},
		{name: "chain out of order", pair: with(pair, func(p *Pair) { p.ChainPEM = append(append([]byte{}, root.pem...), inter.pem...) }),
			err: `chain certificate 1 ("CN=Test Root,O=forlock certs test") did not issue "CN=localhost"`},
		{name: "chain of another CA", pair: with(pair, func(p *Pair) { p.ChainPEM = stranger.pem }), err: "did not issue"},
		{name: "expired intermediate", pair: with(oldInterLeaf, func(p *Pair) { p.ChainPEM = oldInter.pem }),
			err: "chain does not verify up to"},
		{name: "encrypted key", pair: with(pair, func(p *Pair) { p.KeyPEM = encrypted }), err: "private key is encrypted"},
		{name: "no certificate", pair: with(pair, func(p *Pair) { p.CertPEM = nil }), err: "certificate PEM holds no CERTIFICATE block"},
		{name: "not PEM", pair: with(pair, func(p *Pair) { p.CertPEM = []byte("MIIB...") }), err: "certificate PEM holds no PEM block"},
		{name: "key in the certificate PEM", pair: with(pair, func(p *Pair) { p.CertPEM = append(append([]byte{}, p.CertPEM...), ecKey...) }),
			err: `certificate PEM: block 2 is "EC PRIVATE KEY", want CERTIFICATE`},
		{name: "no key", pair: with(pair, func(p *Pair) { p.KeyPEM = nil }), err: "key PEM holds no private key block"},
		{name: "two keys", pair: with(pair, func(p *Pair) { p.KeyPEM = append(append([]byte{}, ecKey...), other.KeyPEM...) }),
			err: "more than one private key"},
		{name: "public key as key", pair: with(pair, func(p *Pair) { p.KeyPEM = []byte("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n") }),
			err: `key PEM: block "PUBLIC KEY", want EC PRIVATE KEY or PRIVATE KEY`},
		{name: "corrupt key", pair: with(pair, func(p *Pair) {
			p.KeyPEM = pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der.Bytes[:20]})
		}), err: "private key (EC PRIVATE KEY) does not parse"},
		{name: "too large", pair: with(pair, func(p *Pair) { p.ChainPEM = bytes.Repeat([]byte{' '}, MaxPEM+1) }),
			err: "chain PEM is 1048577 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := tt.names
			if n == nil {
				n = names
			}
			got, err := Validate(tt.pair, n, now)
			if tt.err == "" {
				require.NoError(t, err)
				require.NotNil(t, got)
				return
			}
			require.ErrorIs(t, err, ErrInvalid)
			require.ErrorContains(t, err, tt.err)
			require.Nil(t, got)
			requireNoKey(t, err.Error(), tt.pair.KeyPEM)
		})
	}

	t.Run("leaf returned", func(t *testing.T) {
		got, err := Validate(pair, names, now)
		require.NoError(t, err)
		require.True(t, got.Equal(leaf))
	})
	t.Run("files are canonical PEM, leaf first, duplicates dropped", func(t *testing.T) {
		in := with(pair, func(p *Pair) {
			p.CertPEM = append([]byte("subject=CN = localhost\n"), append(append([]byte{}, p.CertPEM...), inter.pem...)...)
			p.ChainPEM = chain
		})
		p, err := parse(in, names, now)
		require.NoError(t, err)
		require.Equal(t, string(pair.CertPEM)+string(inter.pem)+string(root.pem), string(p.certFile()))
		require.Equal(t, string(pair.KeyPEM), string(p.keyFile()))
	})
}

// requireNoKey fails if msg holds any base64 line of key's PEM.
func requireNoKey(t *testing.T, msg string, key []byte) {
	t.Helper()
	for line := range strings.Lines(string(key)) {
		line = strings.TrimSpace(line)
		if len(line) >= 16 && !strings.HasPrefix(line, "-----") {
			require.NotContains(t, msg, line, "key material in an error")
		}
	}
}

func TestPairHidesKey(t *testing.T) {
	pair, _ := newCA(t, "Test Root", nil).leaf(t, leafOpts{})
	var out []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x"} {
		out = append(out, fmt.Sprintf(verb, pair), fmt.Sprintf(verb, &pair))
	}
	var js bytes.Buffer
	slog.New(slog.NewJSONHandler(&js, nil)).Info("install", "pair", pair)
	out = append(out, js.String())
	js.Reset()
	slog.New(slog.NewJSONHandler(&js, nil)).Info("install", "task", struct{ P Pair }{pair})
	out = append(out, js.String())
	b, err := json.Marshal(struct{ P *Pair }{&pair})
	require.NoError(t, err)
	out = append(out, string(b))
	for _, s := range out {
		require.Contains(t, s, "redacted")
		requireNoKey(t, s, pair.KeyPEM)
		require.NotContains(t, s, "PRIVATE")
	}
}

func TestSerialHex(t *testing.T) {
	_, leaf := newCA(t, "Test Root", nil).leaf(t, leafOpts{})
	s := SerialHex(leaf.SerialNumber)
	require.Regexp(t, `^[0-9a-f]{2}(:[0-9a-f]{2})*$`, s)
	require.Equal(t, "00", SerialHex(new(big.Int)))
	require.Equal(t, "01:00", SerialHex(big.NewInt(256)))
	require.Empty(t, SerialHex(nil))

	info := Describe(leaf)
	require.Equal(t, s, info.Serial)
	require.Equal(t, "CN=localhost", info.Subject)
	require.Equal(t, []string{"localhost", "node.forlock.test", net.IPv4(127, 0, 0, 1).String()}, info.Names)
	require.Equal(t, Info{}, Describe(nil))
}
