package certs

import (
	"crypto/tls"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// sequenceTLS serves, on its n-th handshake (from 0), the key pair pick(n)
// returns: an nginx during a reload, when new and old workers both accept.
func sequenceTLS(t *testing.T, pick func(n int64) int, pairs ...Pair) string {
	t.Helper()
	var kps []tls.Certificate
	for _, p := range pairs {
		kp, err := tls.X509KeyPair(p.CertPEM, p.KeyPEM)
		require.NoError(t, err)
		kps = append(kps, kp)
	}
	var n atomic.Int64
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
		return &kps[pick(n.Add(1)-1)], nil
	}}
	l, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	require.NoError(t, err)
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_ = c.(*tls.Conn).Handshake()
			_ = c.Close()
		}
	})
	t.Cleanup(func() { _ = l.Close(); wg.Wait() })
	return l.Addr().String()
}

// One handshake showing the new certificate does not confirm it while
// other handshakes still show the old one: the reload race that let a check
// right after a "confirmed" rotation read the old certificate.
func TestConfirmWaitsUntilOnlyTheNewCertificateIsServed(t *testing.T) {
	ca := newCA(t, "Test Root", nil)
	oldPair, _ := ca.leaf(t, leafOpts{})
	newPair, newLeaf := ca.leaf(t, leafOpts{})
	const fresh, stale = 1, 0

	t.Run("old workers stop after a few handshakes", func(t *testing.T) {
		// new, old, new, old, then only new.
		addr := sequenceTLS(t, func(n int64) int {
			if n < 4 && n%2 == 1 {
				return stale
			}
			return fresh
		}, oldPair, newPair)
		i := &installer{cfg: Config{Addr: addr, ServerName: "localhost", ConfirmTimeout: 10 * time.Second, HandshakeTimeout: time.Second}}
		took, err := i.confirm(t.Context(), newLeaf)
		require.NoError(t, err)
		require.GreaterOrEqual(t, took, confirmSettle, "confirmed before the new certificate was served steadily")
	})

	t.Run("both generations keep answering", func(t *testing.T) {
		addr := sequenceTLS(t, func(n int64) int { return int(n % 2) }, oldPair, newPair)
		i := &installer{cfg: Config{Addr: addr, ServerName: "localhost", ConfirmTimeout: 2 * time.Second, HandshakeTimeout: time.Second}}
		_, err := i.confirm(t.Context(), newLeaf)
		require.ErrorContains(t, err, "not confirmed within")
		require.ErrorContains(t, err, "not serial "+SerialHex(newLeaf.SerialNumber))
	})
}
