// Package logs connects log readers (LogService.StreamLogs) with the agents'
// log data streams (AgentService.PushLogs). Each read gets a pipe: a bounded
// queue of line batches between one agent stream and one reader. A slow
// reader fills its own pipe and so slows only its own agent stream, through
// gRPC flow control; a reader that leaves closes the pipe, which ends the
// agent's stream, and the agent stops reading.
package logs

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"sync"

	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// pipeSize bounds the line batches queued between an agent and a reader.
const pipeSize = 32

// Errors of Attach.
var (
	ErrNoReader  = errors.New("no reader is waiting for this log stream (it may have gone away)")
	ErrWrongNode = errors.New("log stream belongs to another node")
)

// Broker matches agent log streams to waiting readers.
type Broker struct {
	mu    sync.Mutex
	pipes map[string]*Pipe
}

// NewBroker returns an empty broker.
func NewBroker() *Broker { return &Broker{pipes: map[string]*Pipe{}} }

// Pipe is one reader's queue.
type Pipe struct {
	ID     string
	nodeID string

	Lines    chan []*forlockv1.LogLine
	attached chan struct{} // closed when the agent's stream arrives
	done     chan struct{} // closed when the reader has gone
	ended    chan struct{} // closed when the agent's stream ended
	errMsg   string        // set before ended is closed
	once     sync.Once
}

// Open makes a pipe for a reader of nodeID's logs.
func (b *Broker) Open(nodeID string) *Pipe {
	id := make([]byte, 12)
	_, _ = rand.Read(id)
	p := &Pipe{
		ID: hex.EncodeToString(id), nodeID: nodeID,
		Lines:    make(chan []*forlockv1.LogLine, pipeSize),
		attached: make(chan struct{}), done: make(chan struct{}), ended: make(chan struct{}),
	}
	b.mu.Lock()
	b.pipes[p.ID] = p
	b.mu.Unlock()
	return p
}

// Close is called by the reader when it goes: the agent's stream ends.
func (b *Broker) Close(p *Pipe) {
	b.mu.Lock()
	delete(b.pipes, p.ID)
	b.mu.Unlock()
	p.once.Do(func() { close(p.done) })
}

// Attach hands the pipe with this ID to the agent stream of nodeID. A pipe
// is attached once.
func (b *Broker) Attach(id, nodeID string) (*Pipe, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	p, ok := b.pipes[id]
	if !ok {
		return nil, ErrNoReader
	}
	if p.nodeID != nodeID {
		return nil, ErrWrongNode
	}
	delete(b.pipes, id)
	close(p.attached)
	return p, nil
}

// Attached is closed when the agent's stream has arrived.
func (p *Pipe) Attached() <-chan struct{} { return p.attached }

// Done is closed when the reader has gone.
func (p *Pipe) Done() <-chan struct{} { return p.done }

// Ended is closed when the agent's stream has ended; Err then says why, if
// it failed.
func (p *Pipe) Ended() <-chan struct{} { return p.ended }

// Err is the agent's error message, valid after Ended.
func (p *Pipe) Err() string { return p.errMsg }

// End records the end of the agent's stream. Called once, by the agent side.
func (p *Pipe) End(errMsg string) {
	p.errMsg = errMsg
	close(p.ended)
}
