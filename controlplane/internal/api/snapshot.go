package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/forlock/fleet/controlplane/internal/audit"
	"github.com/forlock/fleet/controlplane/internal/snapshot"
	"github.com/forlock/fleet/internal/keys"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// Snapshots makes encrypted snapshots of the control plane
// (snapshot.Saver).
type Snapshots interface {
	Wrapper(ctx context.Context, enc snapshot.Encryption) (keys.Wrapper, error)
	Spool(ctx context.Context, w keys.Wrapper) (*os.File, snapshot.Result, error)
}

// snapshotChunk is the size of each message of SaveSnapshot.
const snapshotChunk = 512 << 10

// SaveSnapshot implements ControlPlaneService.SaveSnapshot: the snapshot is
// encrypted into a temporary file of the data dir, then streamed. The call
// is audited here (it changes nothing, so the auditor's interceptor does not
// see it) with the encryption used and the result, never the passphrase.
func (a *ControlPlaneAPI) SaveSnapshot(req *forlockv1.SaveSnapshotRequest, stream grpc.ServerStreamingServer[forlockv1.SaveSnapshotResponse]) error {
	ctx := stream.Context()
	res, err := a.saveSnapshot(ctx, req, stream)
	actor, role := actorOf(ctx)
	rec := audit.Record{Actor: actor, Role: role, Client: clientOf(ctx), Method: forlockv1.ControlPlaneService_SaveSnapshot_FullMethodName,
		Target: "controlplane", Result: audit.ResultOK, Summary: "encryption=" + encryptionOf(req).String()}
	if res.KeyID != "" {
		rec.Summary += fmt.Sprintf(" key_id=%s taken_at=%s size=%d sha256=%s", res.KeyID, res.TakenAt.Format("2006-01-02T15:04:05Z"), res.Size, res.SHA256)
	}
	if err != nil {
		st := status.Convert(err)
		rec.Result, rec.Error = st.Code().String(), st.Message()
	}
	if a.Audit != nil {
		if werr := a.Audit.Audit(rec); werr != nil {
			a.log().ErrorContext(ctx, "audit record of a snapshot not written", "actor", actor, "err", werr)
		}
	}
	return err
}

func (a *ControlPlaneAPI) saveSnapshot(ctx context.Context, req *forlockv1.SaveSnapshotRequest, stream grpc.ServerStreamingServer[forlockv1.SaveSnapshotResponse]) (snapshot.Result, error) {
	if a.Snapshots == nil {
		return snapshot.Result{}, status.Error(codes.Unavailable, "snapshots are not available on this control plane")
	}
	w, err := a.Snapshots.Wrapper(ctx, encryptionOf(req))
	switch {
	case errors.Is(err, keys.ErrWeakPassphrase):
		return snapshot.Result{}, invalid("snapshot passphrase: %v (forlockctl reads it from --passphrase-file)", err)
	case errors.Is(err, snapshot.ErrBadEncryption):
		return snapshot.Result{}, invalid("%v (forlockctl: --passphrase-file or --transit-key)", err)
	case err != nil:
		return snapshot.Result{}, toStatus(ctx, a.log(), err)
	}
	f, res, err := a.Snapshots.Spool(ctx, w)
	if errors.Is(err, snapshot.ErrKeyUnavailable) {
		return snapshot.Result{}, toStatus(ctx, a.log(), err)
	}
	if err != nil {
		a.log().ErrorContext(ctx, "snapshot failed", "err", err)
		return snapshot.Result{}, status.Errorf(codes.Internal, "snapshot failed: %v", err)
	}
	defer func() { _ = f.Close() }()
	buf := make([]byte, snapshotChunk)
	first := true
	for {
		n, rerr := io.ReadFull(f, buf)
		if n > 0 {
			msg := &forlockv1.SaveSnapshotResponse{Chunk: buf[:n]}
			if first {
				msg.TakenAt, first = timestamppb.New(res.TakenAt), false
			}
			if err := stream.Send(msg); err != nil {
				return res, err
			}
		}
		if errors.Is(rerr, io.EOF) || errors.Is(rerr, io.ErrUnexpectedEOF) {
			break
		}
		if rerr != nil {
			return res, status.Errorf(codes.Internal, "snapshot: read the spooled copy: %v", rerr)
		}
	}
	//nolint:gosec // G115: a size is never negative
	return res, stream.Send(&forlockv1.SaveSnapshotResponse{Done: true, Size: uint64(res.Size), Sha256: res.SHA256})
}

// encryptionOf is what req asks the snapshot to be encrypted to.
func encryptionOf(req *forlockv1.SaveSnapshotRequest) snapshot.Encryption {
	return snapshot.Encryption{Passphrase: []byte(req.GetPassphrase()), TransitKey: req.GetTransitKey()}
}
