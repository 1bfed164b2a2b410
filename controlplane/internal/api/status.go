package api

import (
	"context"

	"google.golang.org/protobuf/types/known/timestamppb"

	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// ControlPlaneAPI implements forlockv1.ControlPlaneService.
type ControlPlaneAPI struct {
	forlockv1.UnsafeControlPlaneServiceServer

	Disk DiskState
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
	return &forlockv1.GetStatusResponse{ServerVersion: serverVersion(), DataDisk: out}, nil
}
