package api

import (
	"context"
	"time"

	"google.golang.org/grpc"

	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// archiveRetry is the wait before trying again to issue an archive key
// (the key-encryption key's Vault may be down).
const archiveRetry = time.Minute

// archiveKeyTimeout bounds issuing a key (a Vault Transit call) while the
// stream's handler waits.
const archiveKeyTimeout = 10 * time.Second

// keyTimer fires when a node's archive key is due for rotation.
type keyTimer struct {
	t    *time.Timer
	last string
}

// C is the timer's channel, nil without archive keys.
func (k *keyTimer) C() <-chan time.Time {
	if k.t == nil {
		return nil
	}
	return k.t.C
}

func (k *keyTimer) stop() {
	if k.t != nil {
		k.t.Stop()
	}
}

// sendArchiveKey sends the node's current archive key after the hello and
// arms the timer for its rotation. Failing to issue one is logged and
// retried: archiving goes on with the key the agent has. A failed send
// ends the stream.
func (a *AgentAPI) sendArchiveKey(ctx context.Context, stream grpc.ServerStream, nodeID string) (*keyTimer, error) {
	k := &keyTimer{}
	if a.ArchiveKeys == nil {
		return k, nil
	}
	k.t = time.NewTimer(time.Hour)
	return k, k.send(ctx, stream, a, nodeID)
}

// send issues (rotating if due) and sends the current key if the agent
// has not had it, then re-arms the timer. Only a failed Send ends the
// stream.
func (k *keyTimer) send(ctx context.Context, stream grpc.ServerStream, a *AgentAPI, nodeID string) error {
	kctx, cancel := context.WithTimeout(ctx, archiveKeyTimeout)
	key, err := a.ArchiveKeys.Current(kctx, nodeID)
	cancel()
	if err != nil {
		a.Log.WarnContext(ctx, "cannot issue the node's archive key; retrying", "node_id", nodeID, "err", err.Error())
		k.t.Reset(archiveRetry)
		return nil
	}
	if key.GetKeyId() != k.last {
		if err := stream.SendMsg(&forlockv1.ConnectResponse{Msg: &forlockv1.ConnectResponse_ArchiveKey{ArchiveKey: key}}); err != nil {
			return err
		}
		k.last = key.GetKeyId()
	}
	clear(key.PlainKey)
	k.t.Reset(max(time.Until(key.GetRotateAfter().AsTime()), time.Second))
	return nil
}
