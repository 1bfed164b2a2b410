package api

import (
	"context"
	"log/slog"

	"google.golang.org/protobuf/types/known/timestamppb"

	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// ControlPlaneAPI implements forlockv1.ControlPlaneService.
type ControlPlaneAPI struct {
	forlockv1.UnsafeControlPlaneServiceServer

	Disk DiskState
	// Snapshots, Audit and Log serve SaveSnapshot.
	Snapshots Snapshots
	Audit     AuditStore
	Log       *slog.Logger
	// Restored, if set, reports the snapshot this control plane was
	// restored from (nil when it was not).
	Restored func() *forlockv1.RestoredFrom
}

func (a *ControlPlaneAPI) log() *slog.Logger {
	if a.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return a.Log
}

// GetStatus implements ControlPlaneService.GetStatus.
func (a *ControlPlaneAPI) GetStatus(context.Context, *forlockv1.GetStatusRequest) (*forlockv1.GetStatusResponse, error) {
	d := a.Disk.Disk()
	out := &forlockv1.DataDiskStatus{DataDir: d.Dir, FreeBytes: d.Free, ReserveBytes: d.Reserve, WritesRefused: d.Full}
	if d.Full {
		out.RefusedSince = timestamppb.New(d.Since)
		if d.Err != nil {
			out.Message = d.Err.Error()
		}
	}
	resp := &forlockv1.GetStatusResponse{ServerVersion: serverVersion(), DataDisk: out}
	if a.Restored != nil {
		resp.RestoredFrom = a.Restored()
	}
	return resp, nil
}
