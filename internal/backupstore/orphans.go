package backupstore

import (
	"errors"
	"io/fs"
	"os"

	"github.com/forlock/fleet/internal/atomicfile"
)

// RemoveTemps removes the temporary files that Puts interrupted by a crash
// or a kill left under the directory, and returns their paths. Call it only
// while no Put runs (the agent does at start, before it takes tasks). A
// missing directory has none.
func (d *Dir) RemoveTemps() ([]string, error) {
	root, err := os.OpenRoot(d.root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer func() { _ = root.Close() }()
	var removed []string
	var errs []error
	walkErr := fs.WalkDir(root.FS(), ".", func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			errs = append(errs, err)
			return nil
		}
		if !e.Type().IsRegular() || !atomicfile.IsTemp(e.Name()) {
			return nil
		}
		if err := root.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
			return nil
		}
		removed = append(removed, d.Location(p))
		return nil
	})
	return removed, errors.Join(walkErr, errors.Join(errs...))
}
