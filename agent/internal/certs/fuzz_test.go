package certs

import (
	"bytes"
	"encoding/pem"
	"errors"
	"strings"
	"testing"
	"time"
)

// FuzzValidate feeds arbitrary PEM to Validate: it must not panic, every
// error must wrap ErrInvalid and hold no line of the key, and anything it
// accepts must be a P-256 leaf whose key matches.
func FuzzValidate(f *testing.F) {
	root := newCA(f, "Fuzz Root", nil)
	inter := newCA(f, "Fuzz Intermediate", root)
	pair, _ := inter.leaf(f, leafOpts{})
	other, _ := inter.leaf(f, leafOpts{})
	rsaPair, _ := root.leaf(f, leafOpts{key: rsaKey(f)})
	now := time.Now()

	f.Add(pair.CertPEM, pair.KeyPEM, inter.pem)
	f.Add(append(append([]byte{}, pair.CertPEM...), inter.pem...), pair.KeyPEM, root.pem)
	f.Add(pair.CertPEM, other.KeyPEM, []byte(nil))
	f.Add(rsaPair.CertPEM, rsaPair.KeyPEM, []byte(nil))
	f.Add(pair.KeyPEM, pair.CertPEM, pair.CertPEM)
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"), []byte("junk"), []byte("-----BEGIN X-----\n-----END X-----"))
	f.Add([]byte(""), []byte(""), []byte(""))

	f.Fuzz(func(t *testing.T, certPEM, keyPEM, chainPEM []byte) {
		p := Pair{CertPEM: certPEM, KeyPEM: keyPEM, ChainPEM: chainPEM}
		parsed, err := parse(p, []string{"localhost"}, now)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error does not wrap ErrInvalid: %v", err)
			}
			for _, line := range keyLines(keyPEM) {
				if strings.Contains(err.Error(), line) && !bytes.Contains(certPEM, []byte(line)) && !bytes.Contains(chainPEM, []byte(line)) {
					t.Fatalf("error holds a line of the key: %v", err)
				}
			}
			return
		}
		leaf, err := Validate(p, []string{"localhost"}, now)
		if err != nil || !leaf.Equal(parsed.leaf) {
			t.Fatalf("Validate and parse disagree: %v", err)
		}
		// What would be installed parses again to the same pair.
		again, err := parse(Pair{CertPEM: parsed.certFile(), KeyPEM: parsed.keyFile()}, []string{"localhost"}, now)
		if err != nil {
			t.Fatalf("installed files do not validate: %v", err)
		}
		if !again.leaf.Equal(parsed.leaf) || len(again.chain) != len(parsed.chain) {
			t.Fatal("installed files differ from the validated pair")
		}
	})
}

// keyLines are the base64 lines (16 characters or more) of the key PEM's
// blocks.
func keyLines(keyPEM []byte) []string {
	var out []string
	for {
		var b *pem.Block
		if b, keyPEM = pem.Decode(keyPEM); b == nil {
			return out
		}
		for line := range strings.Lines(string(pem.EncodeToMemory(&pem.Block{Type: "K", Bytes: b.Bytes}))) {
			if line = strings.TrimSpace(line); len(line) >= 16 && !strings.HasPrefix(line, "-----") {
				out = append(out, line)
			}
		}
	}
}
