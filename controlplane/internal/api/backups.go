package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/forlock/fleet/controlplane/internal/jobs"
	"github.com/forlock/fleet/controlplane/internal/registry"
	"github.com/forlock/fleet/controlplane/internal/store"
	"github.com/forlock/fleet/controlplane/internal/wal"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// BackupAPI implements forlockv1.BackupService: the catalog.
type BackupAPI struct {
	forlockv1.UnsafeBackupServiceServer

	Store    CatalogStore
	Registry *registry.Registry
	Jobs     *jobs.Engine
	Log      *slog.Logger
	// ArchiveKeys are re-wrapped with the artifacts' keys; nil: none.
	ArchiveKeys *wal.Keys
}

// ListRestorePoints implements BackupService.ListRestorePoints.
func (a *BackupAPI) ListRestorePoints(ctx context.Context, req *forlockv1.ListRestorePointsRequest) (*forlockv1.ListRestorePointsResponse, error) {
	limit := int(req.GetPageSize())
	if limit == 0 {
		limit = defaultPageSize
	}
	if limit > maxPageSize {
		return nil, invalid("page_size %d: at most %d", limit, maxPageSize)
	}
	if len(req.GetPageToken()) > 64 {
		return nil, invalid("page_token is not one this server returned")
	}
	nodeID := ""
	if n := req.GetNode(); n != "" {
		t, err := findInScope(ctx, a.Registry, n)
		if err != nil {
			return nil, toStatus(ctx, a.Log, err)
		}
		nodeID = t.ID
	}
	resp := &forlockv1.ListRestorePointsResponse{}
	err := a.Store.ScanRestorePoints(req.GetPageToken(), func(rp *forlockv1.RestorePoint) bool {
		if (nodeID != "" && rp.GetNodeId() != nodeID) || !sees(ctx, a.Registry, rp.GetNodeId()) {
			return true
		}
		if len(resp.RestorePoints) == limit {
			resp.NextPageToken = resp.RestorePoints[limit-1].GetId()
			return false
		}
		for _, art := range rp.GetArtifacts() {
			art.WrappedKey = nil // not for listing
		}
		resp.RestorePoints = append(resp.RestorePoints, rp)
		return true
	})
	if err != nil {
		return nil, toStatus(ctx, a.Log, err)
	}
	return resp, nil
}

// GetArtifact implements BackupService.GetArtifact.
func (a *BackupAPI) GetArtifact(ctx context.Context, req *forlockv1.GetArtifactRequest) (*forlockv1.GetArtifactResponse, error) {
	art, err := a.Store.Artifact(req.GetId())
	if err == nil && !sees(ctx, a.Registry, art.GetNodeId()) {
		err = store.ErrNotFound
	}
	if errors.Is(err, store.ErrNotFound) {
		err = fmt.Errorf("artifact %q %w: see 'forlockctl restore --list'", req.GetId(), err)
	}
	if err != nil {
		return nil, toStatus(ctx, a.Log, err)
	}
	return &forlockv1.GetArtifactResponse{Artifact: art}, nil
}

// RewrapKeys implements BackupService.RewrapKeys.
func (a *BackupAPI) RewrapKeys(ctx context.Context, req *forlockv1.RewrapKeysRequest) (*forlockv1.RewrapKeysResponse, error) {
	if err := unscoped(ctx, "rewrapping backup keys"); err != nil {
		return nil, err
	}
	res, err := a.Jobs.Rewrap(ctx, req.GetDryRun())
	if err != nil {
		return nil, toStatus(ctx, a.Log, err)
	}
	if a.ArchiveKeys != nil && !req.GetDryRun() {
		n, err := a.ArchiveKeys.Rewrap(ctx)
		if err != nil {
			return nil, toStatus(ctx, a.Log, fmt.Errorf("rewrap the WAL archive keys (the artifacts' keys are done): %w", err))
		}
		a.Log.InfoContext(ctx, "WAL archive keys re-wrapped", "count", n, "key_id", res.KeyID)
	}
	return &forlockv1.RewrapKeysResponse{Rewrapped: uint32(res.Rewrapped), Current: uint32(res.Current), KeyId: res.KeyID}, nil //nolint:gosec // counts of a catalog
}

// ListRecoveryWindows implements BackupService.ListRecoveryWindows: per
// node in the caller's scope with cataloged WAL, what a point-in-time
// restore can reach.
func (a *BackupAPI) ListRecoveryWindows(ctx context.Context, req *forlockv1.ListRecoveryWindowsRequest) (*forlockv1.ListRecoveryWindowsResponse, error) {
	var nodes []registry.Target
	if n := req.GetNode(); n != "" {
		t, err := findInScope(ctx, a.Registry, n)
		if err != nil {
			return nil, toStatus(ctx, a.Log, err)
		}
		nodes = append(nodes, t)
	} else {
		for _, n := range a.Registry.List(scopeOf(ctx), nil) {
			nodes = append(nodes, registry.Target{ID: n.GetId(), Name: n.GetName()})
		}
	}
	windows, err := a.Jobs.RecoveryWindows(nodes)
	if err != nil {
		return nil, toStatus(ctx, a.Log, err)
	}
	return &forlockv1.ListRecoveryWindowsResponse{Windows: windows}, nil
}
