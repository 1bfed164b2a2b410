package limit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc/credentials"
)

// DefaultConnsPerAddr is the default cap on unauthenticated connections per
// address.
const DefaultConnsPerAddr = 32

// ErrTooManyConns refuses a connection over the per-address cap.
var ErrTooManyConns = errors.New("too many unauthenticated connections from one address")

// ConnConfig configures Conns.
type ConnConfig struct {
	// MaxPerAddr caps the open connections per address that presented no
	// fleet client certificate and made no call with a valid credential;
	// zero means DefaultConnsPerAddr.
	MaxPerAddr int
	// Log receives one warning per address and minute while connections
	// are refused; nil discards.
	Log *slog.Logger
}

// Conns caps unauthenticated connections per address. Wrap the server's
// TLS credentials with Credentials; call Trust when a call on a connection
// carried a valid credential. Safe for concurrent use.
type Conns struct {
	max int
	log *slog.Logger

	mu     sync.Mutex
	perKey map[string]*slots
	byPeer map[string]*conn // connections holding a slot, by remote address
}

type slots struct {
	n      int
	warned time.Time
}

// NewConns returns a connection limiter.
func NewConns(cfg ConnConfig) *Conns {
	if cfg.MaxPerAddr <= 0 {
		cfg.MaxPerAddr = DefaultConnsPerAddr
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &Conns{max: cfg.MaxPerAddr, log: cfg.Log, perKey: map[string]*slots{}, byPeer: map[string]*conn{}}
}

// Open is the number of slot-holding connections from key.
func (c *Conns) Open(key string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s := c.perKey[key]; s != nil {
		return s.n
	}
	return 0
}

// Trust releases the slot of the connection from remote, if it holds one: a
// call on it carried a valid credential, so it no longer counts.
func (c *Conns) Trust(remote net.Addr) {
	if remote == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if k, ok := c.byPeer[remote.String()]; ok {
		c.releaseLocked(k)
	}
}

// take gives k a slot of its address, or fails over the cap.
func (c *Conns) take(k *conn) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.perKey[k.key]
	if s == nil {
		s = &slots{}
		c.perKey[k.key] = s
	}
	if s.n >= c.max {
		if now := time.Now(); now.Sub(s.warned) >= time.Minute {
			s.warned = now
			c.log.Warn("refusing connections: too many unauthenticated connections from one address",
				"client", k.key, "open", s.n, "limit", c.max)
		}
		return fmt.Errorf("%w (%s has %d open)", ErrTooManyConns, k.key, s.n)
	}
	s.n++
	k.holding = true
	c.byPeer[k.remote] = k
	return nil
}

func (c *Conns) release(k *conn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.releaseLocked(k)
}

func (c *Conns) releaseLocked(k *conn) {
	if !k.holding {
		return
	}
	k.holding = false
	delete(c.byPeer, k.remote)
	if s := c.perKey[k.key]; s != nil {
		if s.n--; s.n <= 0 {
			delete(c.perKey, k.key)
		}
	}
}

// Credentials wraps the server's TLS credentials: after the handshake, a
// connection with a verified client certificate passes untouched; any other
// takes a slot of its address or, over the cap, is closed at once.
func (c *Conns) Credentials(tc credentials.TransportCredentials) credentials.TransportCredentials {
	return &creds{TransportCredentials: tc, c: c}
}

type creds struct {
	credentials.TransportCredentials
	c *Conns
}

func (cr *creds) ServerHandshake(raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	out, ai, err := cr.TransportCredentials.ServerHandshake(raw)
	if err != nil {
		return nil, nil, err
	}
	if ti, ok := ai.(credentials.TLSInfo); ok && len(ti.State.VerifiedChains) > 0 {
		return out, ai, nil
	}
	k := &conn{Conn: out, c: cr.c, key: Key(raw.RemoteAddr()), remote: out.RemoteAddr().String()}
	if err := cr.c.take(k); err != nil {
		_ = out.Close()
		return nil, nil, err
	}
	return k, ai, nil
}

func (cr *creds) ClientHandshake(ctx context.Context, authority string, raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return cr.TransportCredentials.ClientHandshake(ctx, authority, raw) //nolint:staticcheck // delegation only
}

func (cr *creds) Clone() credentials.TransportCredentials {
	return &creds{TransportCredentials: cr.TransportCredentials.Clone(), c: cr.c}
}

// conn is an unauthenticated connection holding a slot until it closes,
// fails, or is trusted.
type conn struct {
	net.Conn
	c       *Conns
	key     string
	remote  string
	holding bool // guarded by c.mu
}

func (k *conn) Close() error {
	k.c.release(k)
	return k.Conn.Close()
}

// Read and Write release the slot on an error too: gRPC gives up a
// connection on any I/O error, and on a few of its error paths closes the
// raw socket rather than this wrapper.
func (k *conn) Read(b []byte) (int, error) {
	n, err := k.Conn.Read(b)
	if err != nil {
		k.c.release(k)
	}
	return n, err
}

func (k *conn) Write(b []byte) (int, error) {
	n, err := k.Conn.Write(b)
	if err != nil {
		k.c.release(k)
	}
	return n, err
}

// SyscallConn keeps the socket reachable for gRPC's channelz, as the TLS
// credentials' own wrapper does.
func (k *conn) SyscallConn() (syscall.RawConn, error) {
	if sc, ok := k.Conn.(syscall.Conn); ok {
		return sc.SyscallConn()
	}
	return nil, errors.New("not a socket")
}
