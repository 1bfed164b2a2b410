package backup

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/forlock/fleet/agent/internal/tasks"
	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

// DeleteHandler deletes artifacts from their storage: a file inside one of
// the allowed backup directories, or an object on the agent's S3 server.
// An artifact already gone counts as deleted, so a repeated task is safe.
type DeleteHandler struct{ c *core }

// NewDeleteHandler checks cfg and returns the delete_backup task handler.
func NewDeleteHandler(cfg Config) (*DeleteHandler, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	return &DeleteHandler{c: &core{cfg: cfg}}, nil
}

// Run deletes every artifact of the spec. It goes on past a failure and
// fails with every error at the end; the deleted ones are in the message.
func (h *DeleteHandler) Run(ctx context.Context, a tasks.Assignment, _ func(*forlockv1.Progress)) (tasks.Result, error) {
	d := a.Spec.GetDeleteBackup()
	if d == nil {
		return tasks.Result{}, errors.New("not a delete_backup task")
	}
	if len(d.GetArtifacts()) == 0 && len(d.GetWal()) == 0 {
		return tasks.Result{}, errors.New("no artifacts to delete")
	}
	var details []string
	var errs []error
	if len(d.GetWal()) > 0 {
		if h.c.cfg.DeleteWAL == nil {
			return tasks.Result{}, errors.New("this agent does not archive WAL: nothing to delete")
		}
		n, err := h.c.cfg.DeleteWAL(ctx, d.GetWal())
		if err != nil {
			errs = append(errs, fmt.Errorf("WAL: %w", err))
		}
		details = append(details, fmt.Sprintf("deleted %d WAL files", n))
	}
	for _, a := range d.GetArtifacts() {
		if err := h.c.delete(ctx, a.GetLocation()); err != nil {
			errs = append(errs, fmt.Errorf("artifact %s: %w", a.GetId(), err))
			continue
		}
		details = append(details, "deleted "+a.GetLocation())
	}
	if err := errors.Join(errs...); err != nil {
		if len(details) > 0 {
			err = fmt.Errorf("%w (%s)", err, strings.Join(details, "; "))
		}
		return tasks.Result{}, err
	}
	return tasks.Result{Message: fmt.Sprintf("deleted %d artifacts", len(d.GetArtifacts())), Details: details}, nil
}

func (c *core) delete(ctx context.Context, location string) error {
	st, name, closeFn, err := c.source(location)
	if err != nil {
		return err
	}
	defer closeFn()
	return st.Delete(ctx, name)
}
