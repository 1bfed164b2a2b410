package audit

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"
)

// ResultOK is the result of a call that succeeded; any other result is a
// gRPC code name.
const ResultOK = "OK"

// Record is one audited event. Seq and Prev are set by Append.
type Record struct {
	Seq  uint64    `json:"seq"`
	Time time.Time `json:"time"`
	// Actor is who acted: an identity's name, "node/<id>" for an agent,
	// "join-token/<id>" for an enrollment, "" when unauthenticated.
	Actor string `json:"actor,omitempty"`
	// Role is the actor's role when it had one.
	Role string `json:"role,omitempty"`
	// Client is the caller's network address.
	Client string `json:"client,omitempty"`
	// Method is the full gRPC method, or an internal event name such as
	// "schedule/backup".
	Method string `json:"method"`
	// Target names what was acted on: a node, a job, a token ID.
	Target string `json:"target,omitempty"`
	// Summary is the request without any field that could hold a secret.
	Summary string `json:"summary,omitempty"`
	// Result is ResultOK or the gRPC code name of the failure.
	Result string `json:"result"`
	// Error is the failure's message, when there was one.
	Error string `json:"error,omitempty"`
	// Reason is the actor's stated reason for the change (a ticket ID).
	Reason string `json:"reason,omitempty"`
	// Count is how many events one aggregated record stands for (failed
	// authentications per client, method and minute); 0 means one.
	Count uint64 `json:"count,omitempty"`
}

// Entry is a stored record with its chain hash, as listed and exported.
type Entry struct {
	Record
	// Hash is the hex chain hash up to and including this record.
	Hash string `json:"hash"`
}

// chainHash links content to the chain ending in prev.
func chainHash(prev []byte, content []byte) []byte {
	h := sha256.New()
	h.Write(prev)
	h.Write(content)
	return h.Sum(nil)
}

// genesis is the chain hash before the first record.
var genesis = make([]byte, sha256.Size)

func seqKey(seq uint64) []byte { return binary.BigEndian.AppendUint64(nil, seq) }

// split parses a stored value into its chain hash and record.
func split(k, v []byte) (hash []byte, content []byte, err error) {
	if len(k) != 8 {
		return nil, nil, fmt.Errorf("key %x is not a sequence number", k)
	}
	if len(v) < sha256.Size {
		return nil, nil, fmt.Errorf("record %d is truncated", binary.BigEndian.Uint64(k))
	}
	return v[:sha256.Size], v[sha256.Size:], nil
}

func decodeEntry(k, v []byte) (Entry, error) {
	hash, content, err := split(k, v)
	if err != nil {
		return Entry{}, err
	}
	var r Record
	if err := json.Unmarshal(content, &r); err != nil {
		return Entry{}, fmt.Errorf("record %d does not decode: %w", binary.BigEndian.Uint64(k), err)
	}
	if r.Seq != binary.BigEndian.Uint64(k) {
		return Entry{}, fmt.Errorf("record stored under %d says it is %d", binary.BigEndian.Uint64(k), r.Seq)
	}
	return Entry{Record: r, Hash: hex.EncodeToString(hash)}, nil
}
