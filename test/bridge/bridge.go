// Package bridge is a TCP proxy for tests that sits between agents and the
// control plane and can pause traffic or cut connections, like etcd's
// integration Bridge. It only listens on loopback.
package bridge

import (
	"net"
	"sync"
)

// Bridge forwards every accepted connection to a target address.
type Bridge struct {
	target string
	lis    net.Listener

	mu     sync.Mutex
	paused chan struct{} // nil when traffic flows; closed on Resume
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup
}

// New starts a bridge on 127.0.0.1 to target.
func New(target string) (*Bridge, error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	b := &Bridge{target: target, lis: lis, conns: map[net.Conn]struct{}{}}
	b.wg.Add(1)
	go b.accept()
	return b, nil
}

// Addr is the address to dial instead of the target.
func (b *Bridge) Addr() string { return b.lis.Addr().String() }

// Pause stops forwarding bytes in both directions; connections stay open and
// data waits in buffers until Resume.
func (b *Bridge) Pause() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.paused == nil {
		b.paused = make(chan struct{})
	}
}

// Resume lets paused traffic flow again.
func (b *Bridge) Resume() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.paused != nil {
		close(b.paused)
		b.paused = nil
	}
}

// DropConnections closes every open connection; new ones are accepted.
func (b *Bridge) DropConnections() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for c := range b.conns {
		_ = c.Close()
	}
}

// Close stops the bridge and closes every connection.
func (b *Bridge) Close() {
	_ = b.lis.Close()
	b.Resume()
	b.DropConnections()
	b.wg.Wait()
}

func (b *Bridge) gate() {
	b.mu.Lock()
	p := b.paused
	b.mu.Unlock()
	if p != nil {
		<-p
	}
}

func (b *Bridge) track(c net.Conn, add bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if add {
		b.conns[c] = struct{}{}
	} else {
		delete(b.conns, c)
	}
}

func (b *Bridge) accept() {
	defer b.wg.Done()
	for {
		in, err := b.lis.Accept()
		if err != nil {
			return
		}
		out, err := net.Dial("tcp", b.target)
		if err != nil {
			_ = in.Close()
			continue
		}
		b.track(in, true)
		b.track(out, true)
		b.wg.Add(2)
		go b.pipe(in, out)
		go b.pipe(out, in)
	}
}

// pipe copies src to dst, waiting at the gate before every write, and closes
// both ends when either fails.
func (b *Bridge) pipe(dst, src net.Conn) {
	defer b.wg.Done()
	defer func() {
		_ = src.Close()
		_ = dst.Close()
		b.track(src, false)
		b.track(dst, false)
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			b.gate()
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return // io.EOF or a closed connection alike
		}
	}
}
