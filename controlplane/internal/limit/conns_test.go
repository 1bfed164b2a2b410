package limit

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/credentials"

	"github.com/forlock/fleet/internal/pki"
)

// tlsPair is a fleet CA, a server TLS config that verifies client
// certificates if given, and a client certificate issued by the CA.
type tlsPair struct {
	ca     *pki.CA
	server *tls.Config
	client tls.Certificate
}

func newTLSPair(t *testing.T) tlsPair {
	t.Helper()
	now := time.Now()
	ca, err := pki.NewCA(now, "test CA")
	require.NoError(t, err)
	key, err := pki.GenerateKey()
	require.NoError(t, err)
	srv, err := ca.IssueServer(now, []string{"127.0.0.1"}, key, time.Hour)
	require.NoError(t, err)
	nkey, err := pki.GenerateKey()
	require.NoError(t, err)
	der, err := pki.CreateCSR(nkey, "n1")
	require.NoError(t, err)
	csr, err := pki.ParseCSR(der)
	require.NoError(t, err)
	node, err := ca.IssueNode(now, csr, pki.NodeID{ID: "0123456789abcdef0123456789abcdef", Epoch: 1}, time.Hour)
	require.NoError(t, err)
	return tlsPair{ca: ca,
		server: &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{srv.Raw}, PrivateKey: key}},
			ClientAuth: tls.VerifyClientCertIfGiven, ClientCAs: ca.Pool(), MinVersion: tls.VersionTLS13},
		client: tls.Certificate{Certificate: [][]byte{node.Raw}, PrivateKey: nkey}}
}

// server accepts connections and runs the wrapped handshake on each,
// reporting the result.
type server struct {
	addr    string
	results chan handshake
	owner   testing.TB // closes every connection when the whole test ends
}

type handshake struct {
	conn net.Conn
	err  error
}

func serve(t *testing.T, creds credentials.TransportCredentials) *server {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	s := &server{addr: l.Addr().String(), results: make(chan handshake, 100), owner: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			raw, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				c, _, err := creds.ServerHandshake(raw)
				if err != nil {
					_ = raw.Close()
				}
				s.results <- handshake{c, err}
			}()
		}
	}()
	t.Cleanup(func() { _ = l.Close(); <-done })
	return s
}

func (s *server) dial(t *testing.T, p tlsPair, withCert bool) (client *tls.Conn, server handshake) {
	t.Helper()
	cfg := &tls.Config{RootCAs: p.ca.Pool(), ServerName: "127.0.0.1", MinVersion: tls.VersionTLS13, NextProtos: []string{"h2"}}
	if withCert {
		cfg.Certificates = []tls.Certificate{p.client}
	}
	c, err := tls.Dial("tcp", s.addr, cfg)
	require.NoError(t, err)
	s.owner.Cleanup(func() { _ = c.Close() })
	select {
	case h := <-s.results:
		if h.conn != nil {
			s.owner.Cleanup(func() { _ = h.conn.Close() })
		}
		return c, h
	case <-time.After(10 * time.Second):
		t.Fatal("no server handshake")
	}
	return nil, handshake{}
}

// closedByServer reports whether the server closed c.
func closedByServer(c *tls.Conn) bool {
	_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	_, err := c.Read(make([]byte, 1))
	var ne net.Error
	return err != nil && (!errors.As(err, &ne) || !ne.Timeout())
}

func TestConnsCapPerAddress(t *testing.T) {
	p := newTLSPair(t)
	c := NewConns(ConnConfig{MaxPerAddr: 3})
	s := serve(t, c.Credentials(credentials.NewTLS(p.server)))

	var held []handshake
	for range 3 {
		cl, h := s.dial(t, p, false)
		require.NoError(t, h.err)
		require.False(t, closedByServer(cl), "under the cap the connection stays open")
		held = append(held, h)
	}
	require.Equal(t, 3, c.Open("127.0.0.1"))

	cl, h := s.dial(t, p, false)
	require.ErrorIs(t, h.err, ErrTooManyConns)
	require.True(t, closedByServer(cl), "over the cap the connection is closed at once")

	t.Run("a fleet client certificate is never counted", func(t *testing.T) {
		for range 5 {
			cl, h := s.dial(t, p, true)
			require.NoError(t, h.err)
			require.False(t, closedByServer(cl))
		}
		require.Equal(t, 3, c.Open("127.0.0.1"))
	})

	t.Run("close frees a slot", func(t *testing.T) {
		require.NoError(t, held[0].conn.Close())
		require.Equal(t, 2, c.Open("127.0.0.1"))
		_ = held[0].conn.Close() // a second close releases nothing more
		require.Equal(t, 2, c.Open("127.0.0.1"))
		_, h := s.dial(t, p, false)
		require.NoError(t, h.err)
		held[0] = h
	})

	t.Run("trust frees a slot", func(t *testing.T) {
		c.Trust(held[1].conn.RemoteAddr())
		require.Equal(t, 2, c.Open("127.0.0.1"))
		require.NoError(t, held[1].conn.Close(), "closing a trusted connection releases nothing more")
		require.Equal(t, 2, c.Open("127.0.0.1"))
	})

	t.Run("an I/O error frees a slot", func(t *testing.T) {
		cl, h := s.dial(t, p, false)
		require.NoError(t, h.err)
		require.Equal(t, 3, c.Open("127.0.0.1"))
		require.NoError(t, cl.Close())
		_, err := io.ReadAll(h.conn)
		require.NoError(t, err) // close_notify: a clean EOF
		_, err = h.conn.Read(make([]byte, 1))
		require.Error(t, err)
		require.Equal(t, 2, c.Open("127.0.0.1"))
	})
}
